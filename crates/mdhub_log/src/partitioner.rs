//! Kafka's default partitioner, bit for bit, so that Java clients,
//! librdkafka (`murmur2_random`) and mdhub put a key in the same partition.

/// Kafka's murmur2 hash, exactly as `org.apache.kafka.common.utils.Utils.murmur2`
/// (seed `0x9747b28c`), returned as Java's signed `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a non-null key:
/// `toPositive(murmur2(key)) % partitions`. `partitions` must be non-zero
/// (0 is treated as 1, so this never panics).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Values from kafka-python's murmur2 (unsigned), see tests/murmur2_python.rs.
        assert_eq!(murmur2(b"kafka") as u32, 3_496_464_228);
        assert_eq!(murmur2(b"") as u32, 275_646_681);
        assert_eq!(partition_for_key(b"kafka", 6), 4);
    }

    #[test]
    fn zero_partitions_does_not_panic() {
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}

//! Integration tests of `mdhub_log` (one test binary): API round trips,
//! process-kill and torn-file crash recovery, Kafka partitioner parity with
//! kafka-python, and a model-based proptest.

mod common;
mod crash_cut;
mod crash_kill;
mod damage;
mod groups_and_meta;
mod model;
mod murmur2_python;
mod retention;
mod round_trip;

"""Reference producer for `mdhub bench bus`: librdkafka through confluent-kafka,
with mdhub's producer settings (acks=all, idempotent, lz4, linger 1 ms,
murmur2_random), producing N JSON trades keyed by 100 symbols.

Usage: python bench/confluent_produce.py HOST:PORT N
"""
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

broker, n = sys.argv[1], int(sys.argv[2])
topic = "confluent-bench-%d" % int(time.time())
admin = AdminClient({"bootstrap.servers": broker})
admin.create_topics([NewTopic(topic, 8, 1)])[topic].result()
time.sleep(1)
p = Producer({
    "bootstrap.servers": broker, "acks": "all", "enable.idempotence": True,
    "linger.ms": 1, "compression.codec": "lz4", "partitioner": "murmur2_random",
})
value = (b'{"type":"trade","venue":"bench","symbol":"S0001","ts_exchange":1795702803000000000,'
         b'"ts_received":1795702803000000000,"price":"10000.01","size":"100","side":"buy","trade_id":"1"}')
t0 = time.time()
for i in range(n):
    while True:
        try:
            p.produce(topic, key=b"S%04d" % (i % 100), value=value)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)
p.flush()
print("confluent-kafka produce/s", int(n / (time.time() - t0)))

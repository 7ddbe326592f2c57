"""Writes the golden record batches of gateway/src/records.rs with kafka-python 3.0.12's own
batch builder (pip install kafka-python==3.0.12 lz4 zstandard python-snappy): two records with
a duplicate header key, and for the compressed codecs eight more so that compression pays."""
import os
from kafka.record.default_records import DefaultRecordBatchBuilder

HERE = os.path.dirname(os.path.abspath(__file__))
codecs = {"none":0,"gzip":1,"snappy":2,"lz4":3,"zstd":4}
for name, c in codecs.items():
    b = DefaultRecordBatchBuilder(magic=2, compression_type=c, is_transactional=False,
        producer_id=1000, producer_epoch=0, base_sequence=0, batch_size=1<<20)
    b.append(0, timestamp=1700000000000, key=b"k1", value=b"v1", headers=[("h", b"1"), ("h", b"2")])
    b.append(1, timestamp=1700000000005, key=None, value=b"v2", headers=[])
    if c:
        for i in range(2, 10):
            b.append(i, timestamp=1700000000000 + i, key=b"key-%d" % i, value=b"value " * 20, headers=[])
    out = bytes(b.build())
    open(os.path.join(HERE, "golden-%s.bin" % name), "wb").write(out)

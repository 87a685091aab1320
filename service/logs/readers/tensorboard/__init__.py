"""TensorBoard event files (``events.out.tfevents.*``), read without tensorflow or tensorboard.

An event file is a sequence of TFRecords, each::

    uint64 length | uint32 masked CRC-32C of the 8 length bytes | payload | uint32 masked CRC-32C of it

and each payload is an ``Event`` protobuf. Only the few messages that hold training curves are
decoded, by hand. One module per concern:

* :mod:`.checksum`: CRC-32C (google-crc32c's when installed; otherwise numpy, or a pure-Python
  table) and TFRecord's masking;
* :mod:`.tfrecord`: the record framing, its length and payload CRCs checked with numpy over many
  records at once, and what happens to damaged files;
* :mod:`.protobuf`: the wire format and the per-record Python decoder of ``Event`` messages;
* :mod:`.fastpath`: the numpy decoder of the common one-scalar events;
* :mod:`.reader`: the reader (:data:`READER`), which joins the two kinds of points into series.

Scalars come as ``simple_value`` (torch.utils.tensorboard, tensorboardX, Lightning, TF1 and some
Keras) or as 0-d tensors (TF2 / Keras: ``tensor {dtype: DT_FLOAT, tensor_content: 4 bytes}`` under
the ``scalars`` plugin). Histograms (``add_histogram``) become norms, sqrt(sum_squares):
``layer_grad_norm`` when the tag names a gradient, else ``weight_norm``. TF2 tensor histograms (a
``[k, 3]`` tensor of buckets) carry no sum of squares and are skipped, as are images, audio, text
and graphs. The hparams plugin's session-start record gives :attr:`RunLog.params`.

Speed (``bench/bench_logs.py``): one Python loop walks the record framing; everything else is numpy
over many records at once; only the records that are not one plain scalar go through the
per-record Python decoder.

Damage: a record whose payload CRC fails is skipped with a ``corrupt_record`` warning and reading
goes on with the next record (its framing is intact). A record whose *length* CRC fails breaks the
framing: the reader searches forward for the next position where a complete record with valid CRCs
starts, and says how many bytes it skipped. A file that ends inside a record gives a
``truncated_log`` warning. Every warning names the record index and byte offset; what was read
before (and after) is returned. Nothing readable at all raises :class:`LogError`.

The registry imports this package by name and takes :data:`READER`; the names below are what tests
and the benchmark use.
"""

from gradhealth.logs.readers.tensorboard.checksum import (
    crc32c,
    crc32c_numpy,
    crc32c_python,
    crc32c_rows,
    mask_crc,
    masked_crc32c,
)
from gradhealth.logs.readers.tensorboard.reader import READER, TensorBoardReader, read_events
from gradhealth.logs.readers.tensorboard.tfrecord import frame_record

__all__ = [
    "READER",
    "TensorBoardReader",
    "crc32c",
    "crc32c_numpy",
    "crc32c_python",
    "crc32c_rows",
    "frame_record",
    "mask_crc",
    "masked_crc32c",
    "read_events",
]

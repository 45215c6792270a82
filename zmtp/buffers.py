"""Buffer sizes per socket: ``ctx.socket(zmtp.PUSH, config=zmtp.BufferConfig.large())``.

Layering: imports nothing of zmtp (plain data); used by ``context`` and the
package face.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BufferConfig"]


@dataclass(frozen=True)
class BufferConfig:
    """How much a socket reads at a time and how much output it gathers
    before one write.

    * ``read_buf_size``: the read page of each connection (the decoder
      receives into it; frames are zero-copy slices of it).  Frames larger
      than the page get a buffer of their own, so this bounds memory per idle
      connection, not message size.
    * ``write_buf_size``: back-to-back sends (and ``send_batch`` /
      ``send_buffered``) share one write until this many bytes wait.
    * ``auto``: the write size follows the sizes sent (about 16 messages,
      4-64 KiB); the read page stays ``read_buf_size``.

    Presets (decision, docs/performance.md): ``small()`` 16 KiB read / 4 KiB
    write, ``default()`` 64 KiB / 64 KiB (what a socket gets without a
    config), ``large()`` 256 KiB / 256 KiB.
    """

    read_buf_size: int = 65536
    write_buf_size: int = 65536
    auto_tune: bool = False

    def __post_init__(self) -> None:
        for name in ("read_buf_size", "write_buf_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 256 <= self.read_buf_size <= 1 << 30:
            raise ValueError(f"read_buf_size must be 256..{1 << 30} bytes, not {self.read_buf_size}")
        if not 1 <= self.write_buf_size <= 1 << 24:
            raise ValueError(f"write_buf_size must be 1..{1 << 24} bytes, not {self.write_buf_size}")

    @classmethod
    def small(cls) -> "BufferConfig":
        """Little memory per connection: 16 KiB read pages, 4 KiB writes."""
        return cls(16384, 4096)

    @classmethod
    def default(cls) -> "BufferConfig":
        """What sockets get without a config: 64 KiB read pages, 64 KiB writes."""
        return cls(65536, 65536)

    @classmethod
    def large(cls) -> "BufferConfig":
        """Throughput: 256 KiB read pages, 256 KiB writes."""
        return cls(262144, 262144)

    @classmethod
    def custom(cls, read_buf_size: int, write_buf_size: int) -> "BufferConfig":
        """Sizes of your own (bytes)."""
        return cls(read_buf_size, write_buf_size)

    @classmethod
    def auto(cls) -> "BufferConfig":
        """Default read pages; the write size tuned from the message sizes sent."""
        return cls(65536, 65536, True)

    def apply(self, sock: object) -> None:
        """Set these sizes on a zmtp socket (before it connects or binds)."""
        sock._buffers(self.read_buf_size, self.write_buf_size, int(self.auto_tune))  # type: ignore[attr-defined]

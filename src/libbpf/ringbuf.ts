// A BPF ring buffer read from userspace: libbpf's ring_buffer manager over
// one BPF_MAP_TYPE_RINGBUF map. Reading never blocks: consume() takes what
// is there now and returns; callers run it from a timer (or when the epoll
// fd becomes readable).
import { c, errno, registerRingSample, unregister } from './ffi.js';
import { BpfError } from './errors.js';

export class RingBuffer {
  private rb: unknown;
  private callback: bigint;

  private constructor(rb: unknown, callback: bigint) {
    this.rb = rb;
    this.callback = callback;
  }

  /** Open the ring buffer behind `mapFd`; each record is handed to
   *  `onRecord` as a copy of at most `maxBytes` bytes, with its full size. */
  static open(mapFd: number, maxBytes: number, onRecord: (data: Buffer, size: number) => void): RingBuffer {
    const staging = Buffer.alloc(maxBytes);
    const callback = registerRingSample((_ctx, data, size) => {
      const n = Number(size);
      const copy = Math.min(n, maxBytes);
      // Copy out: the record's memory goes back to the ring after the call.
      c.memcpy(staging, data, copy);
      onRecord(Buffer.from(staging.subarray(0, copy)), n);
      return 0;
    });
    const rb = c.ring_buffer__new(mapFd, callback, null, null);
    if (!rb) {
      const err = errno();
      unregister(callback);
      throw new BpfError('ring_buffer__new', err, `cannot read the ring buffer map fd ${mapFd}`);
    }
    return new RingBuffer(rb, callback);
  }

  /** Hand every record available now to the callback; returns how many. */
  consume(): number {
    const n = c.ring_buffer__consume(this.rb);
    if (n < 0) throw new BpfError('ring_buffer__consume', -n, 'cannot read samples from the ring buffer');
    return n;
  }

  /** Readable when records are waiting (after a wakeup from the kernel). */
  epollFd(): number {
    return c.ring_buffer__epoll_fd(this.rb);
  }

  close(): void {
    if (!this.rb) return;
    c.ring_buffer__free(this.rb);
    unregister(this.callback);
    this.rb = null;
  }
}

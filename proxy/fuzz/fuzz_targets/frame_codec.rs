//! Fuzz target: any byte stream, delivered in chunks of sizes taken from the input, read by `FrameStream` with a
//! frame limit of 1 B to 16 MiB: it never panics; no allocation is sized by a claimed length (none exceeds a
//! few times what arrived plus one growth step, however much a prefix claims); every frame's prefix equals its
//! body length and is within the limit; and the frames, then the error or the partial frame, account for the
//! stream exactly (nothing lost, reordered or invented).
//! Input: `[limit][keep][n][n chunk sizes][stream]`; a chunk of size s is `16 s + 1` bytes, s = 0 first "not ready".
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use kaas_proxy::kafka::codec::{FrameError, FrameStream, ReadError};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

/// The largest single allocation since the last reset (the read buffer is the only large one).
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Tracking;

// SAFETY: forwards to the system allocator unchanged; only records sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// The codec's smallest read (`MIN_READ`) and growth step (`GROWTH_STEP`).
const MIN_READ: usize = 8 * 1024;
const GROWTH_STEP: usize = 256 * 1024;

/// A stream that hands out `data` in chunks of sizes taken in turn from `sizes` (`16 * size + 1` bytes, or all
/// of it when there are no sizes); a size of 0 first answers "not ready" (waking itself), then gives one byte.
struct Chunks<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
    stalled: bool,
}

impl AsyncRead for Chunks<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = match self.sizes {
            [] => usize::MAX,
            sizes => usize::from(sizes[self.next % sizes.len()]),
        };
        if size == 0 && !self.stalled && !self.data.is_empty() {
            self.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.stalled = false;
        self.next += 1;
        let n = size.saturating_mul(16).saturating_add(1).min(buf.remaining()).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let [limit, keep, n, rest @ ..] = data else { return };
    let max = 1u32 << (limit % 25);
    let keep_frames = keep & 1 == 1;
    let n = usize::from(*n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let rt = runtime();
    let mut held = Vec::with_capacity(if keep_frames { stream.len() / 4 + 1 } else { 0 });
    LARGEST.store(0, Ordering::Relaxed);
    let (seen, end) = rt.block_on(async {
        let mut reader = FrameStream::new(Chunks { data: stream, sizes, next: 0, stalled: false }, max);
        let mut seen = 0usize;
        let end = loop {
            match reader.read_frame().await {
                Ok(Some(frame)) => {
                    let bytes = frame.bytes();
                    let prefix = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                    assert_eq!(prefix as usize, frame.body().len(), "prefix is not the body length");
                    assert!(prefix <= max, "frame of {prefix} bytes passed a limit of {max}");
                    let next = stream.get(seen..seen + bytes.len());
                    assert_eq!(next, Some(&bytes[..]), "frame is not the next bytes of the stream");
                    seen += bytes.len();
                    // Held frames share the read buffer's memory: a different growth path from dropped ones.
                    if keep_frames {
                        held.push(frame);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        (seen, end)
    });
    let largest = LARGEST.load(Ordering::Relaxed);
    // The buffer holds what arrived and room for one more read (at most a growth step, at least the smallest
    // read); BytesMut may double it when it grows. A buffer sized by a claimed length would break this.
    let bound = 4 * (stream.len() + GROWTH_STEP.min(4 + max as usize) + MIN_READ);
    assert!(largest <= bound, "an allocation of {largest} bytes with a frame limit of {max} (bound {bound})");
    match end {
        Ok(()) => assert_eq!(seen, stream.len(), "clean end before the stream was read"),
        Err(ReadError::Truncated(k)) => {
            assert!(k > 0 && seen + k == stream.len(), "the partial frame is not the rest of the stream");
        }
        Err(ReadError::Frame(e)) => {
            let prefix = stream.get(seen..seen + 4).expect("a refused prefix that is not in the stream");
            let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            match e {
                FrameError::Negative(n) => assert!(n == len && n < 0, "{e}"),
                FrameError::TooLarge { len: l, max: m } => {
                    assert!(l as i32 == len && m == max && l > max, "{e}")
                }
            }
        }
        Err(ReadError::Io(e)) => panic!("in-memory stream failed: {e}"),
    }
});

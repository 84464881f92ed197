//! A future run under a watch: whichever ends first, where the watch is
//! polled only when its own waker fires, not on every wake of the task.
//!
//! A connection's task wakes several times for every call it serves (the
//! request's frames, the answer's), and `tokio::select!` polled the
//! connection's idle timer and the server's stop signal at each of them,
//! though neither had anything to say: about 540 instructions for every
//! gRPC call passed through the gateway, of 130,000 (callgrind, 2,000 and
//! 4,000 calls on one connection).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::future::Either;
use futures::task::AtomicWaker;

/// Runs `main` until it ends, or until `watch` does first.
pub(crate) fn until<M: Future + Unpin, W: Future + Unpin>(main: M, watch: W) -> Until<M, W> {
    // Woken to begin with: the watch's first poll arms its waker.
    let woken = Arc::new(WatchWoken { woken: AtomicBool::new(true), task: AtomicWaker::new() });
    Until { main, watch, waker: Waker::from(woken.clone()), woken }
}

pub(crate) struct Until<M, W> {
    main: M,
    watch: W,
    woken: Arc<WatchWoken>,
    /// The waker the watch is polled with: `woken`'s.
    waker: Waker,
}

/// Set by the watch's waker, which then wakes the task.
struct WatchWoken {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WatchWoken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<M: Future + Unpin, W: Future + Unpin> Future for Until<M, W> {
    type Output = Either<M::Output, W::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(output) = Pin::new(&mut this.main).poll(cx) {
            return Poll::Ready(Either::Left(output));
        }
        // Registered before the flag is read: a wake between the two is
        // seen now, and one after it wakes this task again.
        this.woken.task.register(cx.waker());
        if this.woken.woken.swap(false, Ordering::AcqRel)
            && let Poll::Ready(output) = Pin::new(&mut this.watch).poll(&mut Context::from_waker(&this.waker))
        {
            return Poll::Ready(Either::Right(output));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Pending `times` times, waking its task at each, then ready.
    async fn busy(times: usize) -> &'static str {
        let mut left = times;
        std::future::poll_fn(|cx| {
            if left == 0 {
                return Poll::Ready("main");
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    /// `inner`, counting its polls in `polls`.
    async fn counted<F: Future>(polls: &AtomicUsize, inner: F) -> F::Output {
        let mut inner = pin!(inner);
        std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            inner.as_mut().poll(cx)
        })
        .await
    }

    #[tokio::test]
    async fn the_watch_is_polled_only_when_its_waker_fires() {
        let polls = AtomicUsize::new(0);
        let watch = pin!(counted(&polls, std::future::pending::<()>()));
        let ended = until(pin!(busy(100)), watch).await;
        assert!(matches!(ended, Either::Left("main")));
        assert_eq!(polls.load(Ordering::Relaxed), 1, "polled once to arm it, not at each of the 100 wakes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_that_ends_first_ends_the_run() {
        let polls = AtomicUsize::new(0);
        let watch = pin!(counted(&polls, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "watch"
        }));
        let ended = until(pin!(std::future::pending::<()>()), watch).await;
        assert!(matches!(ended, Either::Right("watch")));
        assert_eq!(polls.load(Ordering::Relaxed), 2, "armed, then woken by its timer");
    }

    #[tokio::test]
    async fn a_watch_woken_by_another_task_ends_the_run() {
        let stop = tokio_util::sync::CancellationToken::new();
        let cancel = stop.clone();
        tokio::spawn(async move { cancel.cancel() });
        let ended = until(pin!(std::future::pending::<()>()), pin!(stop.cancelled())).await;
        assert!(matches!(ended, Either::Right(())));
    }
}

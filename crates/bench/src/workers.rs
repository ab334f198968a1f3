//! Closed-loop load: workers that take the numbers `0..total` from one shared counter until
//! all are handed out, on threads of their own or on tokio tasks.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context;
use store::AppendRequest;
use store_sled::Log;

/// The numbers `0..end`, each handed out once, to whichever worker asks first.
pub(crate) struct Counter {
    next: AtomicUsize,
    end: usize,
}

impl Counter {
    fn new(end: usize) -> Counter {
        Counter {
            next: AtomicUsize::new(0),
            end,
        }
    }

    /// The next number; `None` once all are handed out.
    pub(crate) fn take(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.end).then_some(i)
    }
}

/// A thread per element of `workers`, each running `work` on its element and the counter of
/// `0..total`; what each returned, in the order of `workers`, or the first error.
pub(crate) fn on_threads<S: Send, T: Send>(
    workers: impl IntoIterator<Item = S>,
    total: usize,
    work: impl Fn(S, &Counter) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let counter = Counter::new(total);
    let (counter, work) = (&counter, &work);
    let joined: Vec<anyhow::Result<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|s| scope.spawn(move || work(s, counter)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a load thread panicked")))
            })
            .collect()
    });
    joined.into_iter().collect()
}

/// A tokio task per element of `workers`, each running `work` on its element and the counter
/// of `0..total`; what each returned, in the order of `workers`, or the first error.
pub(crate) async fn on_tasks<S, T, F, Fut>(
    workers: impl IntoIterator<Item = S>,
    total: usize,
    work: F,
) -> anyhow::Result<Vec<T>>
where
    F: Fn(S, Arc<Counter>) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let counter = Arc::new(Counter::new(total));
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|s| tokio::spawn(work(s, counter.clone())))
        .collect();
    let mut done = Vec::with_capacity(tasks.len());
    for t in tasks {
        done.push(t.await.context("load task")??);
    }
    Ok(done)
}

/// Writes `requests` appends, `request(n)` for each `n`, into `log` from 32 tasks on a
/// runtime of their own: a log built quickly for a bench to read.
pub(crate) fn fill_log(
    log: &Arc<Log>,
    requests: usize,
    request: impl Fn(usize) -> AppendRequest + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let runtime = crate::runtime()?;
    let request = Arc::new(request);
    runtime.block_on(on_tasks(
        (0..32).map(|_| (log.clone(), request.clone())),
        requests,
        |(log, request), next| async move {
            while let Some(n) = next.take() {
                log.append_async(request(n)).await?;
            }
            anyhow::Ok(())
        },
    ))?;
    Ok(())
}

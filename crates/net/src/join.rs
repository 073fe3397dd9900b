//! Waiting on one call per node at once. Every call to the three nodes
//! runs concurrently on the caller's task; these are the two ways the
//! callers need them joined, with no combinator crate for a few lines.

use std::future::Future;
use std::task::Poll;

/// Runs `futures` concurrently on the current task and returns their
/// outputs in order, or, as soon as one output satisfies `stop`, that
/// output and its index (the others are dropped unfinished).
pub async fn join_all_until<F: Future>(
    futures: Vec<F>,
    stop: impl Fn(&F::Output) -> bool,
) -> Result<Vec<F::Output>, (usize, F::Output)> {
    let mut set: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    let stopped = std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) if stop(&v) => return Poll::Ready(Some((i, v))),
                    Poll::Ready(v) => outputs[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    })
    .await;
    match stopped {
        Some(first) => Err(first),
        None => Ok(outputs.into_iter().flatten().collect()),
    }
}

/// Runs `futures` concurrently on the current task and returns their
/// outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    // `stop` never holds, so this is always `Ok`.
    join_all_until(futures, |_| false).await.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn outputs_come_in_order_whatever_finishes_first() {
        let delays = [30u64, 0, 10];
        let futures = delays
            .iter()
            .map(|&ms| async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                ms
            })
            .collect();
        assert_eq!(block_on(join_all(futures)), vec![30, 0, 10]);
        assert!(block_on(join_all(Vec::<std::future::Ready<u8>>::new())).is_empty());
    }

    #[test]
    fn the_first_stopping_output_returns_at_once() {
        let futures = [5_000u64, 10, 20]
            .into_iter()
            .map(|ms| async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                ms
            })
            .collect();
        let started = std::time::Instant::now();
        let result = block_on(join_all_until(futures, |&ms| ms == 20));
        assert_eq!(result, Err((2, 20)));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

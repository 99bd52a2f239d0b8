//! Reading an admitted request's body, bounded three ways: its own size, a deadline for the
//! whole body, and the bytes all bodies being read or forwarded may hold at once. Only a
//! request whose app key, binding and limits passed gets here.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The in-flight budget counts in KiB, so a semaphore's permit count is never a limit.
const UNIT: usize = 1024;

/// A request body is at most this large before its length is known to need no drain.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

/// The bytes of request bodies held at once, across every app.
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
}

/// A body and its share of the budget, given back when this is dropped.
pub(crate) struct HeldBody {
    pub bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    TooLarge,
    TimedOut,
    Broken,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget {
            permits: Arc::new(Semaphore::new(units(bytes).max(1))),
        }
    }

    /// Reads the body whole, waiting for budget as it grows; refuses it once it passes
    /// `limit` bytes or takes longer than `deadline`.
    pub async fn read<S, E>(
        &self,
        body: &mut S,
        declared: Option<u64>,
        limit: usize,
        deadline: Duration,
    ) -> Result<HeldBody, BodyError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(BodyError::TooLarge);
        }
        tokio::time::timeout(deadline, self.read_within(body, declared, limit))
            .await
            .map_err(|_| BodyError::TimedOut)?
    }

    async fn read_within<S, E>(
        &self,
        body: &mut S,
        declared: Option<u64>,
        limit: usize,
    ) -> Result<HeldBody, BodyError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let mut held = match declared {
            Some(len) => Some(self.take(len as usize).await?),
            None => None,
        };
        let mut granted = declared.map_or(0, |len| units(len as usize) * UNIT);
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| BodyError::Broken)?;
            if buf.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            if buf.len() + chunk.len() > granted {
                let more = self.take(buf.len() + chunk.len() - granted).await?;
                granted += more.num_permits() * UNIT;
                match held.as_mut() {
                    Some(permit) => permit.merge(more),
                    None => held = Some(more),
                }
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(HeldBody {
            bytes: buf.freeze(),
            _permit: held,
        })
    }

    async fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BodyError> {
        let n = u32::try_from(units(bytes)).map_err(|_| BodyError::TooLarge)?;
        self.permits
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| BodyError::Broken)
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// Reads and discards a small refused body so the connection can carry the next request;
/// a large or unsized one is left unread (the connection then closes).
pub(crate) async fn drain_small<S, E>(body: &mut S, declared: Option<u64>)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    if declared.is_some_and(|len| len <= DRAIN_LIMIT) {
        let drain = async { while let Some(Ok(_)) = body.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ()>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_bounds() {
        let budget = BodyBudget::new(4096);
        let held = budget
            .read(&mut chunks(&[b"{\"a\":", b"1}"]), None, 100, SECOND)
            .await
            .unwrap();
        assert_eq!(held.bytes, Bytes::from_static(b"{\"a\":1}"));
        let too_big = budget
            .read(&mut chunks(&[b"0123456789"]), None, 5, SECOND)
            .await;
        assert_eq!(too_big.err(), Some(BodyError::TooLarge));
        let declared_too_big = budget.read(&mut chunks(&[]), Some(6), 5, SECOND).await;
        assert_eq!(declared_too_big.err(), Some(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn bodies_in_flight_wait_for_each_other() {
        let budget = BodyBudget::new(2048);
        let first = budget
            .read(&mut chunks(&[&[b'x'; 2000]]), Some(2000), 4096, SECOND)
            .await
            .unwrap();
        let second = budget
            .read(
                &mut chunks(&[&[b'y'; 1500]]),
                None,
                4096,
                Duration::from_millis(50),
            )
            .await;
        assert_eq!(second.err(), Some(BodyError::TimedOut));
        drop(first);
        let third = budget
            .read(&mut chunks(&[&[b'y'; 1500]]), None, 4096, SECOND)
            .await;
        assert!(third.is_ok(), "the budget came back with the first body");
    }

    #[tokio::test]
    async fn a_trickled_body_meets_its_deadline() {
        let budget = BodyBudget::new(4096);
        let mut slow = Box::pin(stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Some((Ok::<_, ()>(Bytes::from_static(b"x")), n + 1))
        }));
        let read = budget.read(&mut slow, None, 4096, Duration::from_millis(100));
        assert_eq!(read.await.err(), Some(BodyError::TimedOut));
    }
}

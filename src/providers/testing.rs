//! Test support: owned requests and feeding streams to a meter in every kind of read size.

use bytes::Bytes;

use super::{Headers, Metered, ProviderApi, ProxyRequest, RequestInfo, StreamMeter};

/// An owned request to build [`ProxyRequest`]s from.
pub(crate) struct TestRequest {
    pub method: &'static str,
    pub path: &'static str,
    pub query: &'static str,
    pub headers: Headers,
    pub body: Bytes,
}

impl TestRequest {
    pub fn post(path: &'static str, headers: &[(&str, &str)], body: &str) -> Self {
        TestRequest {
            method: "POST",
            path,
            query: "",
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Bytes::from(body.to_owned()),
        }
    }

    pub fn get(path: &'static str, headers: &[(&str, &str)]) -> Self {
        TestRequest {
            method: "GET",
            ..Self::post(path, headers, "")
        }
    }

    pub fn with_query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }

    pub fn proxy(&self) -> ProxyRequest<'_> {
        ProxyRequest {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    pub fn inspect(&self, api: &dyn ProviderApi) -> RequestInfo {
        api.inspect(&self.proxy())
    }
}

/// Feeds `stream` in reads of the given sizes (cycled) and returns what was forwarded.
pub(crate) fn feed_in(
    mut meter: StreamMeter,
    stream: &[u8],
    sizes: &[usize],
) -> (Vec<u8>, Metered) {
    let mut forwarded = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(size.clamp(1, rest.len()));
        forwarded.extend_from_slice(&meter.feed(Bytes::copy_from_slice(read)));
        rest = tail;
    }
    forwarded.extend_from_slice(&meter.flush());
    (forwarded, meter.finish())
}

/// Feeds `stream` whole, byte by byte, in pseudo-random reads and cut in two at every byte,
/// asserts every way forwards the same bytes and meters the same usage, and returns that.
pub(crate) fn meter_every_way(make: impl Fn() -> StreamMeter, stream: &[u8]) -> (Vec<u8>, Metered) {
    let whole = feed_in(make(), stream, &[stream.len().max(1)]);
    let mut plans: Vec<Vec<usize>> = vec![vec![1], vec![2], vec![3], vec![7]];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..8 {
        let plan = (0..16)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 33) as usize % 40 + 1
            })
            .collect();
        plans.push(plan);
    }
    for plan in &plans {
        assert_eq!(feed_in(make(), stream, plan), whole, "reads of {plan:?}");
    }
    for cut in 1..stream.len() {
        let plan = [cut, stream.len()];
        assert_eq!(feed_in(make(), stream, &plan), whole, "cut at {cut}");
    }
    whole
}

//! Request bodies that carry a passphrase or a key: read into memory that is wiped once the
//! handler has its typed value, so the secret does not linger in freed buffers.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use zeroize::{Zeroize, Zeroizing};

use super::errors::{ApiError, PageError};
use crate::hub::HubError;

/// The largest JSON body the passphrase calls read.
const JSON_LIMIT: usize = 256 * 1024;
/// The largest form the pages read.
pub const FORM_LIMIT: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads the whole body into wiped memory, wiping each received chunk as it is copied.
pub async fn read_wiped(
    payload: &mut Payload,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if body.len() + chunk.len() > limit {
            let _ = wipe(chunk);
            return Err(BodyError::TooLarge);
        }
        reserve_wiped(&mut body, chunk.len());
        body.extend_from_slice(&chunk);
        let _ = wipe(chunk);
    }
    Ok(body)
}

/// Grows `body` without leaving an unwiped copy behind in the old allocation.
fn reserve_wiped(body: &mut Zeroizing<Vec<u8>>, more: usize) {
    if body.capacity() - body.len() >= more {
        return;
    }
    let mut bigger = Zeroizing::new(Vec::with_capacity((body.len() + more).max(1024) * 2));
    bigger.extend_from_slice(body);
    *body = bigger;
}

/// Zeroes a received chunk when this is its only owner (the usual case for a request body);
/// true when it did.
pub fn wipe(chunk: Bytes) -> bool {
    match chunk.try_into_mut() {
        Ok(mut owned) => {
            owned.as_mut().zeroize();
            true
        }
        Err(_) => false,
    }
}

/// A JSON body holding a secret, in the API's error shape when it does not fit.
pub struct WipedJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for WipedJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(_: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move {
            let body = read_wiped(&mut payload, JSON_LIMIT).await.map_err(|e| {
                ApiError(HubError::bad_input(
                    "body",
                    match e {
                        BodyError::TooLarge => "The request body is too large for this call.",
                        BodyError::Unreadable => "The request body could not be read.",
                    },
                ))
            })?;
            serde_json::from_slice(&body).map(WipedJson).map_err(|e| {
                ApiError(HubError::bad_input(
                    "body",
                    super::errors::json_error_message(&e.to_string()),
                ))
            })
        })
    }
}

/// A urlencoded form holding a secret, read as `web::Form` would.
pub struct WipedForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for WipedForm<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        let urlencoded = is_urlencoded(req);
        Box::pin(async move {
            if !urlencoded {
                return Err(form_unreadable());
            }
            let body = read_wiped(&mut payload, FORM_LIMIT)
                .await
                .map_err(|_| form_unreadable())?;
            parse_form(&body).map(WipedForm)
        })
    }
}

/// True when the request says its body is a urlencoded form, as `web::Form` insists.
pub fn is_urlencoded(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Decodes a urlencoded body; the caller keeps the bytes wiped.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(body).map_err(|_| form_unreadable())
}

pub fn form_unreadable() -> PageError {
    PageError::Hub(HubError::bad_input(
        "form",
        "The form could not be read. Go back, reload the page and try again.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_wiped_when_unshared_and_left_alone_when_shared() {
        let received = bytes::BytesMut::from(&b"passphrase=correct horse"[..]).freeze();
        assert!(
            wipe(received),
            "a body chunk the reader owns alone is zeroed"
        );
        let shared = Bytes::from(b"still in use elsewhere".to_vec());
        assert!(!wipe(shared.clone()), "another owner still reads it");
        assert_eq!(&shared[..], b"still in use elsewhere");
    }

    #[test]
    fn forms_decode_into_typed_fields() {
        #[derive(serde::Deserialize)]
        struct F {
            passphrase: String,
        }
        let f: F = parse_form(b"passphrase=correct+horse%21").unwrap_or_else(|_| unreachable!());
        assert_eq!(f.passphrase, "correct horse!");
        assert!(parse_form::<F>(b"other=1").is_err());
    }
}

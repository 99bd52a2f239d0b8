//! Session cookie handling and the extractors that require a signed-in browser.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::errors::{ApiError, PageError};
use super::wiped::{FORM_LIMIT, form_unreadable, is_urlencoded, parse_form, read_wiped};
use crate::hub::{Hub, HubError, Session, SessionId};

pub const COOKIE: &str = "whub_session";

/// The session cookie: HttpOnly, SameSite=Strict, for the whole Hub.
pub fn session_cookie(id: &SessionId) -> Cookie<'static> {
    Cookie::build(COOKIE, id.as_str().to_string())
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish()
}

pub const DEVICE_COOKIE: &str = "whub_device";

/// The device cookie of a browser that unlocked this Hub: sent only to `/unlock`, so the
/// browser's unlock attempts get a throttle lane of their own (see `Source::Device`).
pub fn device_cookie(token: &str) -> Cookie<'static> {
    Cookie::build(DEVICE_COOKIE, token.to_string())
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/unlock")
        .max_age(actix_web::cookie::time::Duration::days(400))
        .finish()
}

/// A cookie that removes the session cookie from the browser.
pub fn cleared_cookie() -> Cookie<'static> {
    let mut c = session_cookie(&SessionId::empty());
    c.make_removal();
    c
}

fn hub(req: &HttpRequest) -> Result<&Hub, HubError> {
    req.app_data::<web::Data<Hub>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| HubError::Unexpected("hub state missing".into()))
}

fn current(req: &HttpRequest) -> Result<Option<(SessionId, Session)>, HubError> {
    let hub = hub(req)?;
    Ok(req.cookie(COOKIE).and_then(|c| hub.session(c.value())))
}

/// A signed-in browser on a page route; otherwise a redirect to setup or unlock.
pub struct PageSession {
    pub id: SessionId,
    pub session: Session,
}

impl FromRequest for PageSession {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match current(req) {
            Ok(Some((id, session))) => Ok(PageSession { id, session }),
            Ok(None) => Err(PageError::SignIn {
                initialized: hub(req)
                    .and_then(|h| h.status())
                    .map(|s| s.initialized)
                    .unwrap_or(true),
            }),
            Err(e) => Err(PageError::Hub(e)),
        })
    }
}

/// A signed-in caller on a JSON API route; otherwise 401.
pub struct ApiSession {
    pub id: SessionId,
}

impl FromRequest for ApiSession {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match current(req) {
            Ok(Some((id, _))) => Ok(ApiSession { id }),
            Ok(None) => Err(ApiError(
                if hub(req).map(|h| h.is_locked()).unwrap_or(false) {
                    HubError::Locked
                } else {
                    HubError::Unauthenticated
                },
            )),
            Err(e) => Err(ApiError(e)),
        })
    }
}

/// A state-changing form from a signed-in browser whose CSRF token is this session's.
/// Every page form handler takes one instead of checking the token itself.
pub struct CsrfForm<T> {
    pub session: PageSession,
    pub form: T,
}

fn csrf_expired() -> PageError {
    PageError::Hub(HubError::bad_input(
        "csrf",
        "This form has expired. Go back, reload the page and try again.",
    ))
}

/// The `csrf` field of a urlencoded body, if any.
fn submitted_token(body: &[u8]) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = PageError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, PageError>>>>;

    /// The body is read into wiped memory: forms carry passphrases and provider keys.
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let session = PageSession::extract(&req).await?;
            if !is_urlencoded(&req) {
                return Err(form_unreadable());
            }
            let bytes = read_wiped(&mut payload, FORM_LIMIT)
                .await
                .map_err(|_| form_unreadable())?;
            let token = submitted_token(&bytes);
            let form = parse_form::<T>(&bytes)?;
            if !session.session.csrf_matches(&token) {
                return Err(csrf_expired());
            }
            Ok(CsrfForm { session, form })
        })
    }
}

pub const FLASH_COOKIE: &str = "whub_flash";
const FLASH_SECONDS: i64 = 120;

/// What one page tells the next after a form was sent (post/redirect/get): a notice, or an
/// error with the field it belongs to and what was typed (never a secret). Kept in a
/// short-lived cookie, signed with the session's CSRF token, and read once.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which form the error belongs to (its element id on the page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// The field of that form the error is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Typed values to put back into the form; never a key or passphrase.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub values: std::collections::BTreeMap<String, String>,
    /// The tag of an app key that may be shown once (see `Hub::app_key_tag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reveal: Option<String>,
}

impl Flash {
    pub fn notice(text: impl Into<String>) -> Flash {
        Flash {
            notice: Some(text.into()),
            ..Flash::default()
        }
    }

    /// An error for `field` of the form with element id `form`.
    pub fn error(form: &str, field: &str, text: impl Into<String>) -> Flash {
        Flash {
            error: Some(text.into()),
            form: Some(form.to_string()),
            field: Some(field.to_string()),
            ..Flash::default()
        }
    }

    pub fn keep(mut self, name: &str, value: &str) -> Flash {
        self.values.insert(name.to_string(), value.to_string());
        self
    }

    /// The error, when it belongs to the form `form`.
    pub fn error_for(&self, form: impl AsRef<str>) -> Option<&str> {
        match (&self.error, &self.form) {
            (Some(e), Some(f)) if f == form.as_ref() => Some(e),
            _ => None,
        }
    }

    /// True when the error is about `field` of `form` (the field then gets focus).
    pub fn is_field(&self, form: impl AsRef<str>, field: &str) -> bool {
        self.error_for(form).is_some() && self.field.as_deref() == Some(field)
    }

    /// The value typed into `name` of `form` before an error, or "".
    pub fn value(&self, form: impl AsRef<str>, name: &str) -> &str {
        if self.form.as_deref() != Some(form.as_ref()) {
            return "";
        }
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    /// The cookie carrying this flash to the next page.
    pub fn cookie(&self, signing_key: &str) -> Cookie<'static> {
        let json = serde_json::to_string(self).unwrap_or_default();
        let body = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &json);
        let value = format!("{body}.{}", flash_signature(signing_key, &body));
        Cookie::build(FLASH_COOKIE, value)
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .max_age(actix_web::cookie::time::Duration::seconds(FLASH_SECONDS))
            .finish()
    }

    fn read(value: &str, signing_key: &str) -> Option<Flash> {
        let (body, signature) = value.split_once('.')?;
        let expected = flash_signature(signing_key, body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            signature.as_bytes(),
        )) {
            return None;
        }
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, body).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

fn flash_signature(key: &str, body: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("workshop-hub flash\n{key}\n{body}"));
    hex::encode(&digest[..16])
}

/// The key that signs flashes: the session's CSRF token, or a fixed one before sign-in
/// (setup and unlock carry only the Hub's own error text).
pub fn flash_key(session: Option<&PageSession>) -> &str {
    session.map_or("signed-out", |s| s.session.csrf_token.as_str())
}

/// The flash the previous request left, if any (read once: see `Shown`).
pub struct Incoming(pub Flash);

impl FromRequest for Incoming {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = current(req).ok().flatten();
        let key = session
            .as_ref()
            .map_or("signed-out", |(_, s)| s.csrf_token.as_str());
        let flash = req
            .cookie(FLASH_COOKIE)
            .and_then(|c| Flash::read(c.value(), key))
            .unwrap_or_default();
        ready(Ok(Incoming(flash)))
    }
}

/// Removes the flash cookie from the browser once a page has shown it.
pub fn shown(mut res: actix_web::HttpResponse) -> actix_web::HttpResponse {
    let mut gone = Cookie::build(FLASH_COOKIE, "").path("/").finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    res
}

/// A redirect after a form (post/redirect/get) that carries `flash` to the next page.
pub fn redirect_with(to: &str, flash: &Flash, signing_key: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::SeeOther()
        .cookie(flash.cookie(signing_key))
        .insert_header((actix_web::http::header::LOCATION, to.to_string()))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(flash: &Flash, key: &str) -> String {
        flash.cookie(key).value().to_string()
    }

    #[test]
    fn a_flash_reads_back_only_with_its_session_key_and_untouched() {
        let flash = Flash::error("add-openai", "api_key", "Wrong format").keep("name", "Work");
        let value = sealed(&flash, "csrf-a");
        let read = Flash::read(&value, "csrf-a").unwrap_or_default();
        assert_eq!(read.error_for("add-openai"), Some("Wrong format"));
        assert!(read.is_field("add-openai", "api_key"));
        assert_eq!(read.value("add-openai", "name"), "Work");
        assert_eq!(read.value("add-anthropic", "name"), "");
        assert!(
            Flash::read(&value, "csrf-b").is_none(),
            "another session's key"
        );
        let (body, signature) = value.split_once('.').unwrap_or_default();
        let forged = Flash::notice("Forged");
        let forged_body = sealed(&forged, "x")
            .split_once('.')
            .map(|(b, _)| b.to_string());
        assert!(
            Flash::read(
                &format!("{}.{signature}", forged_body.unwrap_or_default()),
                "csrf-a"
            )
            .is_none()
        );
        assert!(Flash::read(body, "csrf-a").is_none(), "no signature");
    }

    #[test]
    fn the_flash_cookie_is_short_lived_and_http_only() {
        let c = Flash::notice("Saved").cookie("k");
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        assert!(c.max_age().is_some_and(|a| a.whole_seconds() <= 120));
    }

    #[test]
    fn the_csrf_token_is_read_from_a_form_body() {
        assert_eq!(submitted_token(b"name=x&csrf=abc%2B1"), "abc+1");
        assert_eq!(submitted_token(b"name=x"), "");
    }
}

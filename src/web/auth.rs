//! Session cookie handling and the extractors that require a signed-in browser.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::errors::{ApiError, PageError};
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

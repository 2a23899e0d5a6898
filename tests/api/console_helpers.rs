//! What every console test does as a browser would: keep cookies, fetch a
//! page, post a form, read a field back. The console speaks Korean unless
//! told otherwise, so these send no `Accept-Language`.

use std::collections::HashMap;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};

use crate::helpers::TestApp;

/// A browser's cookie jar, kept by hand so the tests see every Set-Cookie.
#[derive(Default, Clone)]
pub struct Jar(pub HashMap<String, String>);

impl Jar {
    pub fn with_session(token: &str) -> Jar {
        Jar(HashMap::from([("gpuhour_session".to_string(), token.to_string())]))
    }

    pub fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn take(&mut self, headers: &HeaderMap) {
        for cookie in headers.get_all(SET_COOKIE) {
            let text = cookie.to_str().expect("cookie text");
            let pair = text.split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || text.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_string(), value.to_string());
            }
        }
    }
}

/// A client that does not follow redirects: each test looks at where it is sent.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub async fn get(app: &TestApp, jar: &mut Jar, path: &str) -> Response {
    let response = browser().get(app.url(path)).header("cookie", jar.header()).send().await.expect("console request");
    jar.take(response.headers());
    response
}

pub async fn post_form(app: &TestApp, jar: &mut Jar, path: &str, fields: &[(&str, &str)]) -> Response {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let response = browser()
        .post(app.url(path))
        .header("cookie", jar.header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("console form post");
    jar.take(response.headers());
    response
}

pub fn location(response: &Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("Location").to_string()
}

/// The value of the first `<input name="{name}" value="…">` in a page.
pub fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("no field {name} in the page:\n{page}"));
    let rest = &page[at + marker.len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

pub async fn text(response: Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.expect("body"))
}

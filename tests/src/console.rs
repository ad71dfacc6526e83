//! A signed-in admin console session over plain HTTP (no browser): for tests of the console's
//! pages, forms, roles and CSRF refusals. It signs in like a browser — the sign-in page's CSRF
//! cookie and field, then the session cookie — and keeps the cookies itself (they are Secure,
//! and a cookie jar would not send them over http). Redirects are not followed, so a test sees
//! them.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// A console session: its cookies and the CSRF token its pages carry.
pub struct ConsoleClient {
    pub base: String,
    pub http: reqwest::Client,
    /// `name=value` of every cookie the server set and did not clear.
    pub cookies: Vec<(String, String)>,
    /// The session's CSRF token (from the pages' `csrf-token` meta tag).
    pub csrf: String,
}

/// What a console request answered.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// Where a redirect points.
    pub location: Option<String>,
    pub body: String,
}

/// The value of `<meta name="csrf-token" content="…">` or of the `csrf` hidden field.
pub fn csrf_of(html: &str) -> Option<String> {
    for marker in ["name=\"csrf-token\" content=\"", "name=\"csrf\" value=\""] {
        if let Some(start) = html.find(marker) {
            let rest = &html[start + marker.len()..];
            return rest.find('"').map(|end| rest[..end].to_string());
        }
    }
    None
}

impl ConsoleClient {
    /// Signs in to the console at `base` (e.g. `http://127.0.0.1:PORT`) with `token`; panics
    /// unless the sign-in succeeds.
    pub async fn sign_in(base: &str, token: &str) -> ConsoleClient {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        ConsoleClient::sign_in_with(http, base, token).await
    }

    /// Like `sign_in`, with a client of the caller's (one trusting a test CA, say; it must not
    /// follow redirects).
    pub async fn sign_in_with(http: reqwest::Client, base: &str, token: &str) -> ConsoleClient {
        let mut client = ConsoleClient {
            base: base.to_string(),
            http,
            cookies: Vec::new(),
            csrf: String::new(),
        };
        let form = client.get("/console/sign-in").await;
        assert_eq!(form.status, 200, "the sign-in page: {}", form.body);
        let csrf = csrf_of(&form.body).expect("the sign-in form has a CSRF field");
        let signed_in = client
            .post_form_raw("/console/sign-in", &[("csrf", &csrf), ("token", token)])
            .await;
        assert_eq!(signed_in.status, 303, "signing in: {}", signed_in.body);
        assert!(
            client
                .cookies
                .iter()
                .any(|(name, _)| name == "__Host-latchkey-session"),
            "signing in set the session cookie"
        );
        let start = client.get("/console").await;
        let to = start
            .location
            .expect("the console sends a signed-in admin on");
        let page = client.get(&to).await;
        assert_eq!(page.status, 200, "{to}: {}", page.body);
        client.csrf = csrf_of(&page.body).expect("signed-in pages carry the CSRF token");
        client
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().expect("an ASCII cookie");
            let pair = text.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != name);
            let cleared = text.to_ascii_lowercase().contains("max-age=0");
            if !cleared {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().expect("an ASCII location").to_string()),
            body: response.text().await.expect("a body"),
        }
    }

    /// GET `path` with the session's cookies.
    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("the server answers");
        self.finish(response).await
    }

    /// POSTs a url-encoded form exactly as given (no CSRF token added).
    pub async fn post_form_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = url_encode(fields);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        self.finish(response).await
    }

    /// POSTs a form with the session's CSRF token added, as the console's pages do.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_form_raw(path, &all).await
    }
}

fn url_encode(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

//! The bench's upstreams: nginx answering canned provider responses (and a second nginx
//! server proxying to it, the floor for one extra hop), and an in-process streamer that sends
//! timestamped chat chunks at a fixed rate so the client can measure each chunk's delay.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const CHAT_ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there! How can I help?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}"#;

pub const CLAUDE_ANSWER: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[{"type":"text","text":"Hi there! How can I help?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":8}}"#;

const OPENAI_MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]}"#;
const CLAUDE_MODELS: &str = r#"{"data":[{"type":"model","id":"claude-haiku-4-5-20251001","display_name":"Claude Haiku 4.5","created_at":"2025-10-01T00:00:00Z"}],"has_more":false,"first_id":"claude-haiku-4-5-20251001","last_id":"claude-haiku-4-5-20251001"}"#;

/// A free loopback port (bound and released; the window for a clash is tiny).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx with a canned upstream and a reverse proxy in front of it, killed on drop.
pub struct Nginx {
    child: Child,
    pub direct: String,
    pub proxied: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub fn start(work: &Path) -> Nginx {
        let (canned, proxy) = (free_port(), free_port());
        let dir = work.join("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, canned, proxy)).unwrap();
        let child = Command::new(nginx_binary())
            .args(["-p", dir.to_str().unwrap(), "-c", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx did not start (scripts/bench.sh installs it)");
        let nginx = Nginx {
            child,
            direct: format!("http://127.0.0.1:{canned}"),
            proxied: format!("http://127.0.0.1:{proxy}"),
        };
        wait_for_port(canned);
        wait_for_port(proxy);
        nginx
    }
}

fn nginx_binary() -> String {
    std::env::var("NGINX").unwrap_or_else(|_| {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nginx")
            .to_string()
    })
}

fn nginx_conf(dir: &Path, canned: u16, proxy: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    upstream canned {{ server 127.0.0.1:{canned}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{canned} backlog=4096;
        default_type application/json;
        location = /v1/chat/completions {{ return 200 '{CHAT_ANSWER}'; }}
        location = /v1/messages {{ return 200 '{CLAUDE_ANSWER}'; }}
        location = /v1/models {{
            if ($http_anthropic_version) {{ return 200 '{CLAUDE_MODELS}'; }}
            return 200 '{OPENAI_MODELS}';
        }}
    }}
    server {{
        listen 127.0.0.1:{proxy} backlog=4096;
        location / {{
            proxy_pass http://canned;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The instant every timestamp in the streamer's chunks counts from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`].
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// How the streamer paces a stream.
#[derive(Clone, Copy)]
pub struct Pace {
    pub chunks: usize,
    pub every: Duration,
}

/// Starts the streamer on a loopback port: `POST /v1/chat/completions` answers an OpenAI
/// chat stream of `pace.chunks` chunks, one every `pace.every`, each carrying the time it
/// was sent (`t<micros>` as its text), then a usage chunk and `[DONE]`.
pub async fn start_streamer(pace: Pace) -> String {
    epoch();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(serve_connection(socket, pace));
        }
    });
    format!("http://{addr}")
}

/// Serves requests on one kept-alive connection until the client closes it.
async fn serve_connection(mut socket: TcpStream, pace: Pace) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some(path) = read_request(&mut socket, &mut buf).await else {
            return;
        };
        let written = if path == "/v1/models" {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                OPENAI_MODELS.len()
            );
            socket
                .write_all(format!("{head}{OPENAI_MODELS}").as_bytes())
                .await
        } else {
            write_stream(&mut socket, pace).await
        };
        if written.is_err() {
            return;
        }
    }
}

/// Reads one request (head and `content-length` body) and returns its path.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..head_end + length);
    Some(path)
}

async fn write_stream(socket: &mut TcpStream, pace: Pace) -> std::io::Result<()> {
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
              transfer-encoding: chunked\r\n\r\n",
        )
        .await?;
    let mut tick = tokio::time::interval(pace.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..pace.chunks {
        tick.tick().await;
        let event = format!(
            "data: {{\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\
             \"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":\
             {{\"content\":\"t{}\"}},\"finish_reason\":null}}]}}\n\n",
            now_us()
        );
        write_chunk(socket, &event).await?;
    }
    let usage = format!(
        "data: {{\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\
         \"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{{\"prompt_tokens\":9,\
         \"completion_tokens\":{},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        pace.chunks,
        pace.chunks + 9
    );
    write_chunk(socket, &usage).await?;
    socket.write_all(b"0\r\n\r\n").await
}

async fn write_chunk(socket: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let framed = format!("{:x}\r\n{data}\r\n", data.len());
    socket.write_all(framed.as_bytes()).await
}

//! A TCP proxy for fault tests: listens on a loopback port of its own and forwards every
//! connection to a target (a directory, a database), with the fault switched at run time:
//! `Pass`, `Latency` (each chunk held before it is forwarded, both ways), `Down` (the port
//! refuses connections and every open one is cut, as when the server stops) and `Blackhole`
//! (connections are accepted and never answered, as when a server freezes).
//!
//! It forwards bytes and knows no protocol, so TLS goes through untouched: a client verifying
//! the server's certificate by IP address (127.0.0.1) verifies it through the proxy too.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards everything at once.
    Pass,
    /// Holds each chunk this long before forwarding it (both directions).
    Latency(Duration),
    /// Refuses new connections (the port is closed) and cuts the open ones.
    Down,
    /// Accepts connections and answers nothing (open ones stop forwarding too).
    Blackhole,
}

/// A running proxy; stopped, with every connection cut, when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target` on a free loopback port, passing traffic. Runs on the current tokio
    /// runtime.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, watching) = watch::channel(Mode::Pass);
        let acceptor = tokio::spawn(accept(listener, addr, target, watching));
        Proxy {
            addr,
            mode,
            acceptor,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the fault.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// The fault now.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Down);
        self.acceptor.abort();
    }
}

/// Accepts while the proxy is not down; closes the port while it is, and binds the same
/// address again when it comes back.
async fn accept(
    listener: TcpListener,
    addr: SocketAddr,
    target: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    let mut listener = Some(listener);
    loop {
        let open = match listener.take() {
            Some(open) => open,
            None => match rebind(addr).await {
                Some(open) => open,
                None => return,
            },
        };
        loop {
            tokio::select! {
                accepted = open.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(connection(client, target, mode.clone()));
                    }
                }
                changed = mode.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *mode.borrow_and_update() == Mode::Down {
                        break;
                    }
                }
            }
        }
        drop(open);
        if mode.wait_for(|m| *m != Mode::Down).await.is_err() {
            return;
        }
    }
}

/// The proxy's own address again (SO_REUSEADDR lets it be bound while closed connections
/// linger); None when another process took it meanwhile.
async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("proxy: {addr} could not be bound again; the proxy stays down");
    None
}

/// One client connection: blackholed, or forwarded both ways until either side closes or the
/// proxy goes down.
async fn connection(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let cut = {
        let mut mode = mode.clone();
        async move {
            let _ = mode.wait_for(|m| *m == Mode::Down).await;
        }
    };
    if *mode.borrow_and_update() == Mode::Blackhole {
        // Read and drop whatever the client sends, answer nothing, until it gives up.
        let mut client = client;
        let swallow = async {
            let mut buf = [0u8; 4096];
            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        tokio::select! {
            _ = swallow => {}
            _ = cut => {}
        }
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let both = async {
        tokio::join!(
            pump(client_read, server_write, mode.clone()),
            pump(server_read, client_write, mode.clone()),
        )
    };
    tokio::select! {
        _ = both => {}
        _ = cut => {}
    }
}

/// Copies `from` to `to` chunk by chunk, each held as the mode says when it is read.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            let now = *mode.borrow_and_update();
            match now {
                Mode::Pass => break,
                Mode::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Mode::Down => return,
                Mode::Blackhole => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"ping").await?;
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await?;
        Ok(answer.to_vec())
    }

    #[tokio::test]
    async fn passes_delays_refuses_cuts_and_blackholes_on_demand() {
        let proxy = Proxy::start(echo().await).await;
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");

        proxy.set(Mode::Latency(Duration::from_millis(150)));
        let started = std::time::Instant::now();
        round_trip(proxy.addr()).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "held once each way"
        );

        proxy.set(Mode::Pass);
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        open.read_exact(&mut answer).await.unwrap();
        proxy.set(Mode::Down);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), open.read_to_end(&mut rest))
            .await
            .expect("an open connection is cut at once");
        assert!(read.is_err() || rest.is_empty(), "{read:?}");
        let refused = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match TcpStream::connect(proxy.addr()).await {
                    Err(error) => return error.kind(),
                    // The listener closes right after the switch; poll until it has.
                    Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .expect("the port closes");
        assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);

        proxy.set(Mode::Blackhole);
        let answered = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if let Ok(mut stream) = TcpStream::connect(proxy.addr()).await {
                    stream.write_all(b"ping").await.unwrap();
                    let mut answer = [0u8; 4];
                    return stream.read_exact(&mut answer).await.map(|_| answer);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            answered.is_err(),
            "a blackhole answers nothing: {answered:?}"
        );

        proxy.set(Mode::Pass);
        assert_eq!(proxy.mode(), Mode::Pass);
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
    }
}

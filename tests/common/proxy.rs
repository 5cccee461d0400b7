//! A TCP proxy a test runs between a node and its PostgreSQL or NATS, to
//! cut, slow and restore that one link (only loopback is ever a target).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::AbortHandle;

/// What the link does now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    /// Bytes pass as they come.
    Up,
    /// Every connection is closed, and new ones are closed at once.
    Cut,
    /// Every chunk waits this long each way.
    Slow(Duration),
    /// About one chunk in four stalls 300 ms (what loss and retransmits
    /// look like to the application).
    Lossy,
}

struct State {
    link: Mutex<Link>,
    conns: Mutex<Vec<AbortHandle>>,
}

/// A proxy on a free loopback port to `127.0.0.1:{upstream}`.
pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            link: Mutex::new(Link::Up),
            conns: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *st.link.lock().unwrap() == Link::Cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (a, b) = (st.clone(), st.clone());
                let up = tokio::spawn(async move { pipe(&a, &mut cr, &mut sw).await });
                let down = tokio::spawn(async move { pipe(&b, &mut sr, &mut cw).await });
                let mut conns = st.conns.lock().unwrap();
                conns.retain(|h| !h.is_finished());
                conns.push(up.abort_handle());
                conns.push(down.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            port,
            state,
            accept,
        }
    }

    /// Sets the link; cutting it closes every connection now.
    pub fn set(&self, link: Link) {
        *self.state.link.lock().unwrap() = link;
        if link == Link::Cut {
            for h in self.state.conns.lock().unwrap().drain(..) {
                h.abort();
            }
        }
    }

    pub fn link(&self) -> Link {
        *self.state.link.lock().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for h in self.state.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

async fn pipe(
    st: &State,
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let link = *st.link.lock().unwrap();
        match link {
            Link::Cut => return,
            Link::Slow(d) => tokio::time::sleep(d).await,
            Link::Lossy if rand::random_bool(0.25) => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

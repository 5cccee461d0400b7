//! Optional (`--features playback`): plays announcements on the server's
//! own sound device, strictly one after another in call order, for halls
//! whose PA system hangs off the server. Needs ALSA (libasound2-dev).

use std::sync::mpsc;

use bytes::Bytes;

/// Calls waiting to be played. A PA that has fallen this far behind is
/// announcing stale calls; later ones are dropped (screens still show them).
const PLAY_QUEUE: usize = 64;

/// The playing thread's inbox.
pub struct Player {
    tx: mpsc::SyncSender<Bytes>,
}

impl Player {
    /// Opens the default output device and starts the playing thread.
    pub fn start() -> Result<Player, String> {
        let (tx, rx) = mpsc::sync_channel::<Bytes>(PLAY_QUEUE);
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hallcast-playback".into())
            .spawn(move || {
                let stream = match rodio::OutputStreamBuilder::open_default_stream() {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot open the sound device: {e}")));
                        return;
                    }
                };
                let sink = rodio::Sink::connect_new(stream.mixer());
                for wav in rx {
                    match rodio::Decoder::new(std::io::Cursor::new(wav)) {
                        Ok(source) => {
                            sink.append(source);
                            // One at a time: the next call waits for this one.
                            sink.sleep_until_end();
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot play an announcement"),
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| "the playback thread ended".to_string())??;
        Ok(Player { tx })
    }

    /// Queues a WAV; drops it when the queue is full.
    pub fn enqueue(&self, wav: Bytes) {
        if self.tx.try_send(wav).is_err() {
            tracing::warn!("playback queue full; announcement dropped");
        }
    }
}

//! Spoken announcements (contract §6).

use crate::gateway::wire::Announcement;
use crate::queue::HallSpec;

/// Composes announcements for voice floors.
#[derive(Default)]
pub struct Announcer {}

impl Announcer {
    /// The announcement of `number` called to `window` on a voice floor.
    pub fn announce(
        &self,
        _spec: &HallSpec,
        _floor: i32,
        _number: &str,
        _window: usize,
    ) -> Option<Announcement> {
        None
    }
}

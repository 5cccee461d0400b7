//! WebSocket channels (contract §4) and the JSON they carry.

pub mod wire;

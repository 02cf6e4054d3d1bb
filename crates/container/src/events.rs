//! The engine's event stream (`GET /events`): a broadcast of Docker `EventMessage`s.
use berth_api::models::{EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum};
use std::collections::HashMap;
use tokio::sync::broadcast;

/// A cloneable handle that publishes events and hands out subscriptions.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<EventMessage>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with room for a burst of events per slow subscriber.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx }
    }

    /// Subscribes to every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventMessage> {
        self.tx.subscribe()
    }

    /// Publishes an event of `typ` (`container`, `image`, …) about object `id`.
    pub fn publish(
        &self,
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attributes: HashMap<String, String>,
    ) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        let msg = EventMessage {
            typ: Some(typ),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(id.to_string()),
                attributes: Some(attributes),
            }),
            scope: Some(EventMessageScopeEnum::LOCAL),
            time: Some(now.timestamp()),
            time_nano: Some(nanos),
        };
        // No subscribers is fine: nobody is listening.
        let _ = self.tx.send(msg);
    }
}

//! The engine's event stream (`GET /events`): a broadcast of Docker `EventMessage`s.
use berth_api::models::{EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many past events `--since` can replay (Docker keeps a similar ring).
const HISTORY: usize = 1024;

/// A cloneable handle that publishes events, keeps the recent ones, and hands out
/// subscriptions.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<EventMessage>,
    history: Arc<Mutex<VecDeque<EventMessage>>>,
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
        Self {
            tx,
            history: Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY))),
        }
    }

    /// Subscribes to every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventMessage> {
        self.tx.subscribe()
    }

    /// The kept events at or after `since_nanos` (Unix ns), and a subscription to the ones
    /// after them, with no gap and no duplicate between the two.
    pub fn replay_and_subscribe(
        &self,
        since_nanos: i64,
    ) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let past = history
            .iter()
            .filter(|m| m.time_nano.unwrap_or_default() >= since_nanos)
            .cloned()
            .collect();
        (past, self.tx.subscribe())
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
        // Publishing under the history lock keeps replay and live delivery in order.
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(msg.clone());
        // No subscribers is fine: nobody is listening.
        let _ = self.tx.send(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_returns_kept_events_then_live_ones() {
        let bus = EventBus::new();
        bus.publish(
            EventMessageTypeEnum::CONTAINER,
            "create",
            "a",
            HashMap::new(),
        );
        let (past, mut rx) = bus.replay_and_subscribe(0);
        assert_eq!(past.len(), 1);
        bus.publish(
            EventMessageTypeEnum::CONTAINER,
            "start",
            "a",
            HashMap::new(),
        );
        assert_eq!(rx.try_recv().unwrap().action.as_deref(), Some("start"));
        let (none, _) = bus.replay_and_subscribe(i64::MAX);
        assert!(none.is_empty());
    }
}

//! What the image endpoints ([`crate::images`], [`crate::archive`]) share: their state and
//! the image events they publish.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::models::EventMessageTypeEnum;
use berth_container::EventBus;
use berth_distribution::client::Distribution;
use berth_image::{ImageStore, Reference};
use futures_util::future::BoxFuture;

/// For each image id used by a container: that container's id, and whether it is running.
pub type ImageUsageMap = HashMap<String, (String, bool)>;

/// Collects [`ImageUsageMap`] from the container service when an image is deleted.
pub type ImageUsage = Arc<dyn Fn() -> BoxFuture<'static, ImageUsageMap> + Send + Sync>;

/// What the image endpoints need.
#[derive(Clone)]
pub struct ImagesState {
    /// The store.
    pub store: Arc<ImageStore>,
    /// Where image events go.
    pub events: EventBus,
    /// Which images containers use (asked before a delete).
    pub usage: ImageUsage,
    /// The busybox to bootstrap from; `None` searches `PATH`, then `/bin/busybox`.
    pub busybox: Option<PathBuf>,
    /// The registry client (pull, push, login, search; `import URL` downloads).
    pub registry: Arc<Distribution>,
}

impl std::fmt::Debug for ImagesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagesState")
            .field("store", &self.store)
            .field("busybox", &self.busybox)
            .finish_non_exhaustive()
    }
}

/// A reference as users write it (`docker.io/library/x` → `x:latest`), as events name images.
fn familiar(reference: &str) -> String {
    Reference::parse(reference).map_or_else(
        |_| reference.to_owned(),
        |parsed| parsed.with_default_tag().familiar(),
    )
}

/// Publishes an `image` event named as users write the image.
pub(crate) fn publish(events: &EventBus, action: &str, image_id: &str, name: &str) {
    let name = if name.starts_with("sha256:") {
        name.to_owned()
    } else {
        familiar(name)
    };
    let attributes = HashMap::from([("name".to_owned(), name)]);
    events.publish(EventMessageTypeEnum::IMAGE, action, image_id, attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_familiar() {
        assert_eq!(familiar("docker.io/library/x"), "x:latest");
        assert_eq!(familiar("docker.io/library/x:y"), "x:y");
        assert_eq!(
            familiar("localhost:5000/team/imp:v2"),
            "localhost:5000/team/imp:v2"
        );
    }
}

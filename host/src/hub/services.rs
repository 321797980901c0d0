//! What the hub layer needs of the node, as one handle.

use std::sync::Arc;

use crate::plugin::{PluginEngine, Registry};
use crate::router::Router;
use crate::tenant::limits::Usage;

/// The plugins that serve hubs (their registry and engine), the router
/// their sends go through, and each tenant's use of the node (for its
/// limits): what a connection's hub calls need. One pointer to clone.
#[derive(Clone)]
pub struct HubServices(Arc<Services>);

struct Services {
    registry: Arc<Registry>,
    engine: Arc<PluginEngine>,
    router: Arc<Router>,
    usage: Arc<Usage>,
}

debug_fields!(HubServices {});

impl HubServices {
    /// The one handle to what hub calls need, made once by the node.
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<PluginEngine>,
        router: Arc<Router>,
        usage: Arc<Usage>,
    ) -> HubServices {
        HubServices(Arc::new(Services {
            registry,
            engine,
            router,
            usage,
        }))
    }

    /// The deployed plugins, by hub.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// Runs plugin calls.
    pub fn engine(&self) -> &PluginEngine {
        &self.0.engine
    }

    /// Where the plugins' sends and group changes go.
    pub fn router(&self) -> &Arc<Router> {
        &self.0.router
    }

    /// Each tenant's use of the node, for its invocation limits.
    pub fn usage(&self) -> &Usage {
        &self.0.usage
    }
}

//! A tenant's enabled connectors as running instances: the stored connector (plugin, role,
//! order, configuration, grant), its secrets opened and handed to the capabilities that use
//! them (never to the plugin), and the plugin from the registry. Instances are cached per
//! connector and rebuilt when its revision changes (any change to it or its secrets, on any
//! replica), so LDAP connection pools survive between requests.
//!
//! It owns that assembly. It must never give a plugin a secret or a capability the tenant did
//! not grant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::capabilities::graph;
use crate::capabilities::ldap::{self, ConnectorTags};
use crate::capabilities::{Capability, CapabilitySet};
use crate::runtime::{ConnectorInstance, ConnectorSettings, Limits, PluginRegistry};
use crate::store::{Connector, ConnectorRole, Store, StoreError};

/// A connector of a tenant with its running instance.
#[derive(Clone)]
pub struct TenantConnector {
    pub record: Connector,
    pub instance: ConnectorInstance,
}

impl TenantConnector {
    pub fn is_primary(&self) -> bool {
        self.record.role == ConnectorRole::Primary
    }
}

/// Why a connector could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("connector {connector} uses plugin `{plugin}`, which is not installed on this server")]
    PluginMissing { connector: String, plugin: String },
    #[error("connector {connector}: {message}")]
    Invalid { connector: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds and caches connector instances.
pub struct Connectors {
    store: Store,
    registry: Arc<PluginRegistry>,
    cache: Mutex<HashMap<String, (i64, ConnectorInstance)>>,
}

impl Connectors {
    pub fn new(store: Store, registry: Arc<PluginRegistry>) -> Connectors {
        Connectors {
            store,
            registry,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The plugin registry.
    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// The tenant's enabled connectors, the primary first, then secondaries in order.
    pub async fn enabled(&self, tenant_id: &str) -> Result<Vec<TenantConnector>, ResolveError> {
        let mut out = Vec::new();
        for record in self.store.connectors(tenant_id).await? {
            if record.enabled {
                out.push(self.resolve(record).await?);
            }
        }
        Ok(out)
    }

    /// Connector `id` of `tenant_id`, enabled or not.
    pub async fn get(&self, tenant_id: &str, id: &str) -> Result<TenantConnector, ResolveError> {
        let record = self.store.connector(tenant_id, id).await?;
        self.resolve(record).await
    }

    /// Drops the cached instance of connector `id` (after its secrets changed).
    pub fn forget(&self, id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    async fn resolve(&self, record: Connector) -> Result<TenantConnector, ResolveError> {
        if let Some((stamp, instance)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&record.id)
            && *stamp == record.revision
            && instance.plugin().manifest().id == record.plugin
        {
            return Ok(TenantConnector {
                instance: instance.clone(),
                record,
            });
        }
        let plugin =
            self.registry
                .get(&record.plugin)
                .ok_or_else(|| ResolveError::PluginMissing {
                    connector: record.id.clone(),
                    plugin: record.plugin.clone(),
                })?;
        let granted = grant(&record)?;
        let effective = plugin.manifest().requested().intersection(granted);
        let secrets = self
            .store
            .connector_secrets(&record.tenant_id, &record.id)
            .await?;
        let ldap = effective.contains(Capability::Ldap).then(|| {
            ldap::directory(
                &record.config,
                &secrets,
                ConnectorTags::new(record.tenant_id.as_str(), record.id.as_str()),
            )
        });
        let graph = effective.contains(Capability::Graph).then(|| {
            graph::connection(
                &record.config,
                &secrets,
                ConnectorTags::new(record.tenant_id.as_str(), record.id.as_str()),
            )
        });
        let instance = ConnectorInstance::new(
            plugin,
            ConnectorSettings {
                tenant: record.tenant_id.clone(),
                connector: record.id.clone(),
                granted,
                config: record.config.clone(),
                limits: Limits::default(),
                ldap,
                graph,
            },
        )
        .map_err(|e| ResolveError::Invalid {
            connector: record.id.clone(),
            message: e.to_string(),
        })?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.id.clone(), (record.revision, instance.clone()));
        Ok(TenantConnector { record, instance })
    }
}

/// The capabilities granted to a connector, parsed.
fn grant(record: &Connector) -> Result<CapabilitySet, ResolveError> {
    record
        .granted
        .iter()
        .map(|name| {
            name.parse::<Capability>()
                .map_err(|e| ResolveError::Invalid {
                    connector: record.id.clone(),
                    message: e.to_string(),
                })
        })
        .collect()
}

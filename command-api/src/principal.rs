//! Who a request claims to be, named from its head by the gate (`crate::gate`), and the
//! key its share of the request slots is counted under (`crate::limits`). Its own module
//! so that the slots, below the gate, need not reach up to it.

/// Who a request claims to be, from its head.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A native client, by name.
    Client(String),
    /// A provider call, by provider id (its signature not checked yet).
    Provider(String),
    /// Another instance of the cluster, passing on a command (`crate::cluster`).
    Peer,
    /// Health, readiness, metrics and unknown paths.
    Public,
}

impl Principal {
    /// The key its share of the slots is counted under.
    pub fn key(&self) -> String {
        match self {
            Principal::Client(name) => format!("client:{name}"),
            Principal::Provider(pid) => format!("provider:{pid}"),
            Principal::Peer => "peer".into(),
            Principal::Public => "public".into(),
        }
    }
}

//! Several API instances on one database, without collapse: each wallet is decided by
//! one instance, its owner, so its cached state stays the log's and its commands batch
//! together; any instance takes any request and passes a command for a wallet it does
//! not own to the owner (docs/0011-several-instances.md).
//!
//! - **Members**: each instance keeps a row in `api_instances` (its id and the address the
//!   others reach it at) fresh every [`HEARTBEAT`]; the members are the rows with an
//!   address seen within [`MEMBER_TTL`] (an instance outside a cluster keeps a row with
//!   none, `crate::presence`). A stopping instance deletes its row; a killed one drops out when its
//!   row goes stale.
//! - **Owner**: rendezvous hashing of the wallet id over the members: every instance that
//!   sees the same members picks the same owner, and a member leaving moves only its own
//!   wallets.
//! - **Forwarding**: `POST /internal/v1/execute` on the owner, authenticated by the shared
//!   `BETLEDGER_CLUSTER_SECRET` (sent in clear: the instances talk over a private
//!   network), answered with the owner's own answers. Commands for one
//!   owner travel together: a lane per owner sends what has queued while its last
//!   requests were in flight (up to [`FORWARD_BATCH_MAX`] per request, [`LANE_IN_FLIGHT`]
//!   requests at once), so the hop costs one HTTP exchange per batch, not per command.
//!   If the owner cannot
//!   be reached (no connection), the instance decides the command itself and leaves the
//!   owner out for a while: ownership is for speed only. Correctness never depends on it:
//!   the log's keys (wallet and sequence, wallet and transaction id) let one command in,
//!   and the batched path checks every refusal against the log, so two instances that
//!   disagree on an owner for a moment are slower, not wrong. But a command the owner may
//!   have received and not answered (a timeout, a connection lost mid-request) is not
//!   decided here: the owner could still accept what this instance would refuse. The
//!   caller gets `503` and retries under the same transaction id, which is safe whatever
//!   the owner did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{Balance, WalletCommand, WalletError, WalletId};
use eventstore::{CommandReceipt, ExecuteError, StoreError, WalletSnapshot, WalletStore};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// How often an instance renews its row and reads the others'.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A member whose row is older than this is gone.
pub const MEMBER_TTL: Duration = Duration::from_secs(3);
/// How long a forwarded command may take before this instance decides it itself.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an owner that could not be reached is left out.
pub const SUSPECT_FOR: Duration = Duration::from_secs(5);
/// The header that carries the cluster secret on calls between instances.
pub const SECRET_HEADER: &str = "x-betledger-cluster-secret";
/// Where an owner takes forwarded commands.
pub const EXECUTE_PATH: &str = "/internal/v1/execute";
/// Commands per forwarded request, at most.
pub const FORWARD_BATCH_MAX: usize = 256;
/// Forwarded requests in flight to one owner at once.
pub const LANE_IN_FLIGHT: usize = 4;

/// A command waiting in an owner's lane.
struct Pending {
    forwarded: Forwarded,
    reply: tokio::sync::oneshot::Sender<Result<Answer, Unanswered>>,
}

/// Why a forwarded command has no answer.
#[derive(Debug, Clone)]
enum Unanswered {
    /// It never reached the owner (no connection): deciding it here is safe.
    NotDelivered(String),
    /// It may have reached the owner, which may still decide it: deciding it here could
    /// answer a refusal the owner then overturns, so the caller must retry instead.
    Unknown(String),
}

/// Another instance (or this one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub address: String,
}

/// This instance's view of the others.
pub struct Cluster {
    me: Member,
    secret: String,
    pool: PgPool,
    members: RwLock<Arc<Vec<Member>>>,
    suspects: Mutex<HashMap<Uuid, Instant>>,
    http: reqwest::Client,
    /// One lane per owner commands were passed to.
    lanes: Mutex<HashMap<Uuid, tokio::sync::mpsc::Sender<Pending>>>,
}

/// A command passed to its wallet's owner.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    pub wallet_id: WalletId,
    pub command: WalletCommand,
}

/// The owner's answer, as it would have answered its own caller.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    Done(CommandReceipt),
    Refused {
        error: WalletError,
        balance: Option<Balance>,
    },
    Contention,
    Unavailable(String),
}

impl Answer {
    pub fn of(result: Result<CommandReceipt, ExecuteError>) -> Answer {
        match result {
            Ok(receipt) => Answer::Done(receipt),
            Err(ExecuteError::Refused { error, balance }) => Answer::Refused { error, balance },
            Err(ExecuteError::Contention { .. }) => Answer::Contention,
            Err(ExecuteError::Store(e)) => Answer::Unavailable(e.to_string()),
        }
    }

    fn into_result(self, wallet_id: WalletId) -> Result<CommandReceipt, ExecuteError> {
        match self {
            Answer::Done(receipt) => Ok(receipt),
            Answer::Refused { error, balance } => Err(ExecuteError::Refused { error, balance }),
            Answer::Contention => Err(ExecuteError::Contention { wallet_id }),
            Answer::Unavailable(message) => {
                Err(ExecuteError::Store(StoreError::Unavailable(message.into())))
            }
        }
    }
}

impl Cluster {
    /// Joins the instances on `pool`'s database as a member reachable at `address`.
    pub async fn join(pool: PgPool, address: String, secret: String) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            // Never carry the secret to another address.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1_024)
            .tcp_nodelay(true)
            .build()?;
        let cluster = Arc::new(Cluster {
            me: Member {
                id: Uuid::new_v4(),
                address,
            },
            secret,
            pool,
            members: RwLock::new(Arc::new(Vec::new())),
            suspects: Mutex::new(HashMap::new()),
            http,
            lanes: Mutex::new(HashMap::new()),
        });
        cluster.beat().await?;
        Ok(cluster)
    }

    /// The members seen at the last heartbeat, this one included, by id.
    fn members(&self) -> Arc<Vec<Member>> {
        self.members.read().expect("members lock").clone()
    }

    /// Renews this instance's row and reads the members; forgets rows long gone.
    pub async fn beat(&self) -> Result<(), sqlx::Error> {
        // One statement, so one commit a second per instance: the renewal, the removal of
        // rows gone for long, and the others that are fresh (the statement's snapshot
        // does not see its own renewal, so this instance is added below).
        let mut rows: Vec<(Uuid, String)> = sqlx::query_as(
            "WITH renewed AS (
                 INSERT INTO api_instances (instance_id, address, heartbeat_at)
                 VALUES ($1, $2, now())
                 ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now(), address = $2
                 RETURNING 1),
             forgotten AS (
                 DELETE FROM api_instances WHERE heartbeat_at < now() - interval '1 hour'
                 RETURNING 1)
             SELECT instance_id, address FROM api_instances
              WHERE instance_id <> $1 AND address <> ''
                AND heartbeat_at > now() - make_interval(secs => $3)",
        )
        .bind(self.me.id)
        .bind(&self.me.address)
        .bind(MEMBER_TTL.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        rows.push((self.me.id, self.me.address.clone()));
        rows.sort_unstable();
        let members: Vec<Member> = rows
            .into_iter()
            .map(|(id, address)| Member { id, address })
            .collect();
        metrics::gauge!("cluster_members").set(members.len() as f64);
        // A lane to a member that left ends once its queue is empty.
        self.lanes
            .lock()
            .expect("lanes lock")
            .retain(|id, _| members.iter().any(|m| m.id == *id));
        *self.members.write().expect("members lock") = Arc::new(members);
        Ok(())
    }

    /// Renews the row every [`HEARTBEAT`] until `stop`, then leaves.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.beat().await {
                        tracing::warn!(error = %e, "cluster heartbeat failed; will retry");
                    }
                }
                _ = &mut stop => break,
            }
        }
        self.leave().await;
    }

    /// Deletes this instance's row, so the others stop forwarding to it at once.
    pub async fn leave(&self) {
        let left = sqlx::query("DELETE FROM api_instances WHERE instance_id = $1")
            .bind(self.me.id)
            .execute(&self.pool)
            .await;
        if let Err(e) = left {
            tracing::warn!(error = %e, "could not leave the cluster; the others will time it out");
        }
    }

    /// Whether `presented` is the cluster secret (compared in constant time).
    pub fn admits(&self, presented: &str) -> bool {
        let (a, b) = (presented.as_bytes(), self.secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }

    /// The member that decides `wallet_id`, unless it is this one.
    pub fn owner(&self, wallet_id: WalletId) -> Option<Member> {
        let members = self.members();
        let now = Instant::now();
        let suspects = self.suspects.lock().expect("suspects lock");
        let owner = members
            .iter()
            .filter(|m| m.id == self.me.id || suspects.get(&m.id).is_none_or(|t| *t < now))
            .max_by_key(|m| score(wallet_id, m.id))?;
        (owner.id != self.me.id).then(|| owner.clone())
    }

    fn suspect(&self, member: &Member) {
        metrics::counter!("cluster_forward_failures_total").increment(1);
        self.suspects
            .lock()
            .expect("suspects lock")
            .insert(member.id, Instant::now() + SUSPECT_FOR);
    }

    /// Passes `command` to `owner` through its lane.
    async fn forward(
        &self,
        owner: &Member,
        wallet_id: WalletId,
        command: &WalletCommand,
    ) -> Result<Answer, Unanswered> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = Pending {
            forwarded: Forwarded {
                wallet_id,
                command: command.clone(),
            },
            reply,
        };
        let lane = {
            let mut lanes = self.lanes.lock().expect("lanes lock");
            lanes
                .entry(owner.id)
                .or_insert_with(|| {
                    let (tx, rx) = tokio::sync::mpsc::channel(FORWARD_BATCH_MAX * LANE_IN_FLIGHT);
                    tokio::spawn(lane(
                        self.http.clone(),
                        owner.address.clone(),
                        self.secret.clone(),
                        rx,
                    ));
                    tx
                })
                .clone()
        };
        lane.send(pending)
            .await
            .map_err(|_| Unanswered::NotDelivered("the lane to the owner closed".into()))?;
        answer
            .await
            .map_err(|_| Unanswered::Unknown("the lane to the owner dropped the command".into()))?
    }
}

/// An owner's lane: takes what has queued (at most [`FORWARD_BATCH_MAX`]) whenever one of
/// its [`LANE_IN_FLIGHT`] requests is free, and sends it as one request.
async fn lane(
    http: reqwest::Client,
    address: String,
    secret: String,
    mut rx: tokio::sync::mpsc::Receiver<Pending>,
) {
    let room = Arc::new(tokio::sync::Semaphore::new(LANE_IN_FLIGHT));
    loop {
        let Ok(permit) = room.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < FORWARD_BATCH_MAX {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (http, address, secret) = (http.clone(), address.clone(), secret.clone());
        tokio::spawn(async move {
            let (commands, replies): (Vec<Forwarded>, Vec<_>) =
                batch.into_iter().map(|p| (p.forwarded, p.reply)).unzip();
            metrics::histogram!("cluster_forward_batch_size").record(commands.len() as f64);
            match send(&http, &address, &secret, &commands).await {
                Ok(answers) if answers.len() == replies.len() => {
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Ok(answers) => {
                    let e = Unanswered::Unknown(format!(
                        "{address} gave {} answers to {}",
                        answers.len(),
                        replies.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// One forwarded request: the commands in, the owner's answers out, in order.
async fn send(
    http: &reqwest::Client,
    address: &str,
    secret: &str,
    commands: &[Forwarded],
) -> Result<Vec<Answer>, Unanswered> {
    let response = http
        .post(format!("http://{address}{EXECUTE_PATH}"))
        .header(SECRET_HEADER, secret)
        .json(commands)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                Unanswered::NotDelivered(e.to_string())
            } else {
                Unanswered::Unknown(e.to_string())
            }
        })?;
    let status = response.status();
    if !status.is_success() {
        // Refused before running anything (a wrong secret, a body it would not take).
        let e = format!("{address} answered {status}");
        return Err(if status.is_client_error() {
            Unanswered::NotDelivered(e)
        } else {
            Unanswered::Unknown(e)
        });
    }
    response
        .json::<Vec<Answer>>()
        .await
        .map_err(|e| Unanswered::Unknown(e.to_string()))
}

/// The rendezvous score of `member` for `wallet_id`: the owner is the member with the
/// highest. A fixed mix (splitmix64), so every build and every instance agrees.
fn score(wallet_id: WalletId, member: Uuid) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let w = wallet_id.as_uuid().as_u128();
    let m = member.as_u128();
    let h = mix((w as u64) ^ mix((w >> 64) as u64));
    mix(h ^ mix((m as u64) ^ mix((m >> 64) as u64)))
}

/// The write path of an instance in a cluster: commands for wallets this instance owns
/// run on `local`; the others go to their owner, or run here if it cannot be reached.
pub struct RoutedStore {
    pub local: Arc<dyn WalletStore>,
    pub cluster: Arc<Cluster>,
}

#[async_trait]
impl WalletStore for RoutedStore {
    async fn execute(
        &self,
        wallet_id: WalletId,
        command: WalletCommand,
    ) -> Result<CommandReceipt, ExecuteError> {
        let Some(owner) = self.cluster.owner(wallet_id) else {
            return self.local.execute(wallet_id, command).await;
        };
        match self.cluster.forward(&owner, wallet_id, &command).await {
            Ok(answer) => {
                metrics::counter!("cluster_forwarded_total").increment(1);
                answer.into_result(wallet_id)
            }
            Err(Unanswered::NotDelivered(e)) => {
                tracing::warn!(owner = %owner.address, error = %e,
                               "the wallet's owner cannot be reached; deciding here");
                self.cluster.suspect(&owner);
                self.local.execute(wallet_id, command).await
            }
            // The owner may have it and may still decide it: an answer from here could
            // contradict its. The caller retries with the same transaction id, which is
            // safe either way, and by then the owner is left out or has answered.
            Err(Unanswered::Unknown(e)) => {
                tracing::warn!(owner = %owner.address, error = %e,
                               "the wallet's owner took the command but gave no answer");
                self.cluster.suspect(&owner);
                Err(ExecuteError::Store(StoreError::Unavailable(
                    format!(
                        "the instance that decides this wallet did not answer ({e}); \
                         retry with the same transaction id"
                    )
                    .into(),
                )))
            }
        }
    }

    /// Reads come from the log on any instance.
    async fn wallet(&self, wallet_id: WalletId) -> Result<Option<WalletSnapshot>, StoreError> {
        self.local.wallet(wallet_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_spread_evenly_and_a_leaving_member_moves_only_its_wallets() {
        let members: Vec<Uuid> = (1..=3u128).map(Uuid::from_u128).collect();
        let owner = |ms: &[Uuid], w: WalletId| *ms.iter().max_by_key(|m| score(w, **m)).unwrap();
        let wallets: Vec<WalletId> = (0..3_000)
            .map(|i| {
                WalletId::for_player(
                    &domain::PlayerId::new(format!("p{i}")).unwrap(),
                    domain::Currency::Eur,
                )
            })
            .collect();
        let mut counts = HashMap::new();
        for w in &wallets {
            *counts.entry(owner(&members, *w)).or_insert(0) += 1;
        }
        for m in &members {
            let n = counts[m];
            assert!((800..=1_200).contains(&n), "{m} owns {n} of 3000");
        }
        let two = &members[..2];
        for w in &wallets {
            let before = owner(&members, *w);
            if before != members[2] {
                assert_eq!(owner(two, *w), before, "a wallet moved without need");
            }
        }
    }
}

//! Game sessions in Redis: the token a provider uses to name a player. A token is 256 bits
//! from the OS's random source, shown once; Redis keeps only its SHA-256, so a copy of
//! Redis gives no usable token. Each use extends the session (GETEX), and a Redis that is
//! down answers `503 UNAVAILABLE`, never a crash.

use domain::{Currency, GameId, PlayerId, WalletId};
use fred::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// What a session binds together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub player_id: PlayerId,
    pub currency: Currency,
    pub provider_id: String,
    pub game_id: GameId,
    pub wallet_id: WalletId,
}

/// The session store.
#[derive(Clone)]
pub struct Sessions {
    client: Client,
    prefix: String,
    ttl_s: u64,
}

fn unavailable(e: fred::error::Error) -> ApiError {
    tracing::warn!(error = %e, "redis unavailable for sessions");
    ApiError::Unavailable("the session store is unavailable; retry".into())
}

impl Sessions {
    pub fn new(client: Client, prefix: &str, ttl_s: u64) -> Self {
        Sessions {
            client,
            prefix: prefix.to_string(),
            ttl_s,
        }
    }

    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    fn key(&self, token: &str) -> String {
        format!(
            "{}:session:{}",
            self.prefix,
            hex::encode(Sha256::digest(token.as_bytes()))
        )
    }

    /// Stores `session` under a new token and returns the token.
    pub async fn create(&self, session: &Session) -> Result<String, ApiError> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let value = serde_json::to_string(session).expect("a session serialises");
        let _: () = self
            .client
            .set(
                self.key(&token),
                value,
                Some(fred::types::Expiration::EX(self.ttl_s as i64)),
                None,
                false,
            )
            .await
            .map_err(unavailable)?;
        Ok(token)
    }

    /// The session of `token`, extended by the TTL; `INVALID_TOKEN` if unknown or expired.
    pub async fn touch(&self, token: &str) -> Result<Session, ApiError> {
        if token.is_empty() || token.len() > 256 {
            return Err(ApiError::InvalidToken(
                "unknown or expired session token".into(),
            ));
        }
        let value: Option<String> = self
            .client
            .custom(
                fred::types::CustomCommand::new_static(
                    "GETEX",
                    fred::types::ClusterHash::FirstKey,
                    false,
                ),
                vec![self.key(token), "EX".into(), self.ttl_s.to_string()],
            )
            .await
            .map_err(unavailable)?;
        let value = value
            .ok_or_else(|| ApiError::InvalidToken("unknown or expired session token".into()))?;
        serde_json::from_str(&value)
            .map_err(|e| ApiError::Unavailable(format!("a session in Redis is unreadable: {e}")))
    }

    /// The wallet of the session of `token`, without extending it; `None` if it is
    /// unknown or expired.
    pub async fn wallet_of(&self, token: &str) -> Result<Option<domain::WalletId>, ApiError> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let value: Option<String> = self
            .client
            .get(self.key(token))
            .await
            .map_err(unavailable)?;
        value
            .map(|v| {
                serde_json::from_str::<Session>(&v)
                    .map(|s| s.wallet_id)
                    .map_err(|e| {
                        ApiError::Unavailable(format!("a session in Redis is unreadable: {e}"))
                    })
            })
            .transpose()
    }

    /// Ends the session; `true` if it existed.
    pub async fn end(&self, token: &str) -> Result<bool, ApiError> {
        let removed: i64 = self
            .client
            .del(self.key(token))
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }
}

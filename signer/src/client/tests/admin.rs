//! The admin calls through the pool's one failover loop, against the same fake nodes: they
//! move past down and leaderless nodes to the one that answers, never retry an answer, never
//! read an admin FAILED_PRECONDITION as a slashing refusal, and name every node when none
//! answers.

use super::*;
use crate::pb::admin_server::Admin;
use crate::protection::Profile;
use crate::registry::KeyState;
use zeroize::Zeroizing;

impl Fake {
    /// The fake's answer to any admin call about `key_id`, in state `state`.
    async fn admin_answer(&self, key_id: &str, state: &str) -> Result<pb::AdminKeyInfo, Status> {
        self.seen.lock().unwrap().push(key_id.to_owned());
        match self.behavior {
            Behavior::Sign => Ok(pb::AdminKeyInfo {
                key_id: key_id.to_owned(),
                state: state.to_owned(),
                loaded_here: true,
                ..Default::default()
            }),
            Behavior::NoLeader => Err(Status::unavailable(
                "no leader can accept the request right now; retry",
            )),
            // As the admin service answers for a deleted key: no Refusal detail.
            Behavior::Refuse => Err(Status::failed_precondition(format!(
                "key {key_id:?} is deleted"
            ))),
            Behavior::BadRequest => Err(Status::already_exists(format!(
                "key id {key_id:?} is already taken"
            ))),
            Behavior::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Err(Status::internal("woke up"))
            }
        }
    }
}

#[tonic::async_trait]
impl Admin for Fake {
    async fn generate_key(
        &self,
        request: Request<pb::GenerateKeyRequest>,
    ) -> Result<Response<pb::AdminKeyInfo>, Status> {
        let key_id = request.into_inner().key_id;
        self.admin_answer(&key_id, "active")
            .await
            .map(Response::new)
    }

    async fn import_key(
        &self,
        request: Request<pb::ImportKeyRequest>,
    ) -> Result<Response<pb::AdminKeyInfo>, Status> {
        let req = request.into_inner();
        let origin = match req.secret {
            Some(pb::import_key_request::Secret::RawSecret(raw)) => format!("raw-{}", raw.len()),
            Some(pb::import_key_request::Secret::Keystore(k)) => format!("keystore-{}", k.password),
            None => return Err(Status::invalid_argument("secret: missing")),
        };
        let mut info = self.admin_answer(&req.key_id, "active").await?;
        info.origin = origin;
        Ok(Response::new(info))
    }

    async fn list_keys(
        &self,
        _: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let info = self.admin_answer("listed", "active").await?;
        Ok(Response::new(pb::ListKeysResponse { keys: vec![info] }))
    }

    async fn set_key_state(
        &self,
        request: Request<pb::SetKeyStateRequest>,
    ) -> Result<Response<pb::AdminKeyInfo>, Status> {
        let req = request.into_inner();
        self.admin_answer(&req.key_id, &req.state)
            .await
            .map(Response::new)
    }

    async fn rotate_kek(
        &self,
        _: Request<pb::RotateKekRequest>,
    ) -> Result<Response<pb::RotateKekResponse>, Status> {
        self.admin_answer("rotate", "active").await?;
        Ok(Response::new(pb::RotateKekResponse {
            rewrapped: 2,
            remaining: 0,
            errors: Vec::new(),
        }))
    }
}

#[tokio::test]
async fn admin_calls_fail_over_to_the_node_that_accepts_them() {
    let c = cluster(
        &[None, Some(Behavior::NoLeader), Some(Behavior::Sign)],
        fast(),
    )
    .await;
    let info = c.pool.generate_key("gen-1", Profile::Eth2).await.unwrap();
    assert_eq!(
        (info.key_id.as_str(), info.state.as_str()),
        ("gen-1", "active")
    );
    assert_eq!(c.calls(1), vec!["gen-1"]);
    assert_eq!(c.calls(2), vec!["gen-1"]);

    // The next calls start at the node that answered.
    let info = c
        .pool
        .set_key_state("gen-1", KeyState::Disabled)
        .await
        .unwrap();
    assert_eq!(info.state, "disabled");
    let (node, keys) = c.pool.list_keys().await.unwrap();
    assert_eq!(node, 3);
    assert_eq!(keys[0].key_id, "listed");
    let secret = ImportSecret::Raw(Zeroizing::new(vec![7; 32]));
    let info = c
        .pool
        .import_key("imp-1", Profile::Espresso, &secret)
        .await
        .unwrap();
    assert_eq!(info.origin, "raw-32");
    let secret = ImportSecret::Keystore {
        json: "{}".into(),
        password: Zeroizing::new("pw".into()),
    };
    assert_eq!(format!("{secret:?}"), "ImportSecret::Keystore(<redacted>)");
    let info = c
        .pool
        .import_key("imp-2", Profile::Eth2, &secret)
        .await
        .unwrap();
    assert_eq!(info.origin, "keystore-pw");
    let rotated = c.pool.rotate_kek().await.unwrap();
    assert_eq!((rotated.rewrapped, rotated.remaining), (2, 0));
    assert_eq!(
        c.calls(1),
        vec!["gen-1"],
        "a later call went back to a follower"
    );
}

#[tokio::test]
async fn admin_answers_are_definitive_and_never_refusals() {
    let c = cluster(&[Some(Behavior::Refuse), Some(Behavior::Sign)], fast()).await;
    match c.pool.set_key_state("k", KeyState::Active).await {
        Err(ClientError::Other(status)) => {
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert!(status.message().contains("deleted"), "{status:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.calls(1).is_empty(), "a definitive answer was retried");

    let c = cluster(&[Some(Behavior::BadRequest), Some(Behavior::Sign)], fast()).await;
    match c.pool.generate_key("k", Profile::Espresso).await {
        Err(ClientError::Other(status)) => assert_eq!(status.code(), Code::AlreadyExists),
        other => panic!("{other:?}"),
    }
    assert!(c.calls(1).is_empty());
}

#[tokio::test]
async fn admin_unavailable_names_the_last_failure_of_every_node() {
    let options = PoolOptions {
        deadline: Duration::from_millis(600),
        ..fast()
    };
    let c = cluster(&[Some(Behavior::NoLeader), None], options).await;
    match c.pool.rotate_kek().await {
        Err(ClientError::Unavailable {
            attempts,
            last_error,
        }) => {
            assert!(attempts >= 2, "{attempts}");
            assert!(
                last_error.contains("node-1: Unavailable: no leader"),
                "{last_error}"
            );
            assert!(last_error.contains("node-2: "), "{last_error}");
        }
        other => panic!("{other:?}"),
    }
}

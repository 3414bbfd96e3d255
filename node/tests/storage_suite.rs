//! openraft's storage conformance suite, run against the redb log store and state machine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use signer_node::replica::{LogStore, StateMachine, TypeConfig};

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft-log.redb"), true).expect("log store");
        let sm = StateMachine::open(&dir.path().join("state.redb"), true).expect("state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_on_redb() {
    TypeConfig::run(async {
        Suite::test_all(RedbBuilder).await.expect("storage suite");
    });
}

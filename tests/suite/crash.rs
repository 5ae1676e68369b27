//! Worker processes dying under load (docs/reliability.md): `kill -9` mid-stream and SIGTERM
//! mid-stream, with real `jirasync worker` processes. Every issue must end in the
//! state of its last event, no change may be written twice, and `P.dead` stays empty.

use crate::common;

use std::process::Command;

use common::webhook_load::load;

#[tokio::test]
async fn a_worker_killed_mid_stream_loses_nothing_and_writes_nothing_twice() {
    let load = load(common::migrated().await).await;
    let mut first = common::process("worker", &load.settings, &[]);
    load.wait_until_some_are_handled().await;
    first.kill().expect("kill -9 the worker");
    let _ = first.wait();
    let mut second = common::process("worker", &load.settings, &[]);
    load.assert_every_issue_ends_in_its_last_event().await;
    let _ = second.kill();
    let _ = second.wait();
}

#[tokio::test]
async fn sigterm_mid_stream_loses_nothing() {
    let load = load(common::migrated().await).await;
    let mut first = common::process("worker", &load.settings, &[]);
    load.wait_until_some_are_handled().await;
    let status = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(
        exited.success(),
        "a worker stops cleanly on SIGTERM: {exited:?}"
    );
    let mut second = common::process("worker", &load.settings, &[]);
    load.assert_every_issue_ends_in_its_last_event().await;
    let _ = second.kill();
    let _ = second.wait();
}

//! How long group steps take on a large group (native SQLite, in memory). Ignored by default:
//! `cargo test -p kafdo-group --release --test scale -- --ignored --nocapture`.

use std::time::Instant;

use kafdo_group::GroupCoordinator;
use kafdo_sql::Sqlite;
use kafdo_types::group::{HeartbeatRequest, JoinGroupRequest, TopicPartitionCount};

#[test]
#[ignore]
fn large_group_timings() {
    for (members, topics) in [(100usize, 10usize), (1_000, 39)] {
        let mut group = GroupCoordinator::open(Sqlite::memory()).unwrap();
        let names: Vec<String> = (0..topics).map(|t| format!("t{t}")).collect();
        let counts: Vec<TopicPartitionCount> = names
            .iter()
            .map(|t| TopicPartitionCount {
                topic: t.clone(),
                partitions: 256,
            })
            .collect();
        let req = JoinGroupRequest {
            topics: names.clone(),
            session_timeout_ms: Some(1_800_000),
            ..Default::default()
        };
        let start = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..members {
            let r = group.join(&req, &counts, 0).unwrap();
            ids.push((r.member_id, r.generation_id));
        }
        let join_ms = start.elapsed().as_secs_f64() * 1000.0 / members as f64;
        // Two rounds of heartbeats let every release and grant go through.
        let start = Instant::now();
        let mut beats = 0;
        for round in 0..3 {
            for (id, generation_id) in ids.iter_mut() {
                let r = group
                    .heartbeat(
                        id,
                        &HeartbeatRequest {
                            generation_id: *generation_id,
                        },
                        &[],
                        1 + round,
                    )
                    .unwrap();
                *generation_id = r.generation_id;
                beats += 1;
            }
        }
        let beat_ms = start.elapsed().as_secs_f64() * 1000.0 / beats as f64;
        let start = Instant::now();
        group.leave(&ids[0].0, 10).unwrap();
        let leave_ms = start.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{members} members, {} partitions: join {join_ms:.2} ms each (one rebalance per join), \
             heartbeat {beat_ms:.3} ms, leave (rebalance) {leave_ms:.1} ms",
            topics * 256
        );
    }
}

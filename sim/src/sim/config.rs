//! A run's shape: what a seed draws (swarm testing: some runs gentle, some brutal) and the
//! bugs a test may plant.

use crate::rng::Rng;

/// Bugs the simulator can plant, from outside the cores or in the shared orchestration, to show
/// the checker catches them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The partition loses the producer state of its latest append when it restarts (as if the
    /// sequence numbers were not written in the same transaction as the records), so a retry
    /// after a restart is not recognised as a duplicate.
    pub skip_duplicate_check: bool,
    /// The coordinator writes commit markers before it persists PrepareCommit, and may restart
    /// in between.
    pub markers_before_prepare: bool,
    /// Old epochs are not fenced: a request with an older epoch is taken as the current one by
    /// the coordinator and the partitions.
    pub no_epoch_fence: bool,
    /// The `IdempotencyKey` object keeps a key's reservation (its producer id and attempt) in
    /// memory only until the answer is stored: a restart forgets an unfinished key, so the
    /// next attempt reserves a new producer id and its batches are no longer duplicates.
    pub ingest_forgets_reservation: bool,
    /// The partition adapter builds the compacted topic's `PartitionConfig` without the
    /// topic's delete retention (0 instead), so tombstones go at the first compaction round
    /// that reaches them instead of after the retention.
    pub compaction_ignores_delete_retention: bool,
    /// Compaction ignores the last stable offset: a step plans its round up to the high
    /// watermark, so an open transaction's records enter the key map and supersede committed
    /// records of their keys (planted by hiding the open transactions' first offsets from the
    /// core for the step: the simulator reopens the core without them and puts them back).
    pub compaction_ignores_lso: bool,
    /// Retention ignores time: the Worker hands the retained topic's partitions a topic config
    /// with `retention_ms = 0`, so every append that applies retention deletes every row older
    /// than the current millisecond instead of only the expired ones.
    pub retention_ignores_time: bool,
    /// Retention ignores the last stable offset: an append to a retained partition runs on a
    /// core that sees no open transaction (their first offsets hidden, as for
    /// `compaction_ignores_lso`), so retention may delete an open transaction's rows; the
    /// simulator then puts the first offsets back, raised to the new log start so the
    /// partition opens again. (The step runs on a freshly opened core, so in this mode every
    /// append to a retained partition applies retention.)
    pub retention_ignores_lso: bool,
    /// Planted in the shared orchestration (`kafdo_broker::PlantedBugs`): a keyed produce
    /// appends with the producer id it proposed instead of the one its key reserved, so a retry
    /// of an unfinished attempt is not a duplicate of the first.
    pub keyed_produce_ignores_reservation: bool,
    /// Planted in the shared orchestration: a produce answers each partition's offsets in
    /// reverse order.
    pub produce_offsets_reversed: bool,
    /// A partition skips the check that a producer id was handed out (it takes every append's
    /// `producer_ids_below` as 2^53), so a client can claim an id before its owner gets it.
    pub partition_accepts_unallocated_producer: bool,
}

/// The compacted topic of a seed that has one: its own keyed writers and readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionSetup {
    /// Partitions of [`COMPACTED_TOPIC`](super::COMPACTED_TOPIC).
    pub partitions: i32,
    /// Idempotent producers writing keyed records to it.
    pub idempotent_producers: u32,
    /// Transactional ids writing keyed records to it (one process each).
    pub transactional_ids: u32,
    /// read_committed consumers of it.
    pub consumers: u32,
    /// Its partitions' `PartitionConfig::delete_retention_ms`.
    pub delete_retention_ms: i64,
    /// Its partitions' `PartitionConfig::compaction_interval_ms`.
    pub compaction_interval_ms: i64,
}

/// The retained topic of a seed that has one (`cleanup_policy = delete` with a finite
/// `retention_ms`): its own writers and readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSetup {
    /// Partitions of [`RETAINED_TOPIC`](super::RETAINED_TOPIC).
    pub partitions: i32,
    /// Idempotent producers writing to it.
    pub idempotent_producers: u32,
    /// Transactional ids writing to it (one process each).
    pub transactional_ids: u32,
    /// read_committed consumers of it.
    pub consumers: u32,
    /// The topic's `retention_ms`.
    pub retention_ms: i64,
}

/// One simulated run's shape. [`Config::for_seed`] varies it by seed (swarm testing).
#[derive(Clone, Debug)]
pub struct Config {
    /// The seed.
    pub seed: u64,
    /// Faults on (drops, duplicates, delays, restarts, alarm chaos, client crashes).
    pub faults: bool,
    /// Partitions of the topic producers write to.
    pub partitions: i32,
    /// Idempotent producers.
    pub idempotent_producers: u32,
    /// Transactional ids, and processes per transactional id (more than one makes zombies).
    pub transactional_ids: u32,
    /// See [`Config::transactional_ids`].
    pub instances_per_id: u32,
    /// read_committed consumers (one per partition, round robin).
    pub consumers: u32,
    /// Read-process-write processors (each its own transactional id, one group), and the
    /// idempotent producers that feed their input.
    pub processors: u32,
    /// See [`Config::processors`].
    pub input_producers: u32,
    /// Partitions of the pipeline's input and output topics.
    pub pipeline_partitions: (i32, i32),
    /// The processors' group session timeout.
    pub session_timeout_ms: i64,
    /// Batches per idempotent producer, transactions per transactional producer.
    pub ops_per_client: u32,
    /// Per mille chance a message is dropped.
    pub drop_per_mille: u32,
    /// Per mille chance a message is duplicated.
    pub duplicate_per_mille: u32,
    /// Per mille chance a message is delayed by up to seconds.
    pub slow_per_mille: u32,
    /// Mean ms between fault ticks (restarts, client crashes).
    pub fault_interval_ms: i64,
    /// How long a client waits for an answer.
    pub client_timeout_ms: i64,
    /// Transaction timeout of the transactional producers.
    pub transaction_timeout_ms: i64,
    /// Keyed-ingestion clients (each runs a script of `Idempotency-Key` requests).
    pub ingest_clients: u32,
    /// Processes per ingestion client: two run the same script concurrently, as a client that
    /// thinks its first attempt died does.
    pub ingest_processes: u32,
    /// The lease of an ingestion attempt.
    pub ingest_lease_ms: i64,
    /// How long an `Idempotency-Key` is remembered.
    pub ingest_ttl_ms: i64,
    /// The coordinators' `roll_epoch`: low values make transactional ids move to new producer
    /// ids often.
    pub roll_epoch: i32,
    /// A compacted topic with its own keyed writers, or none.
    pub compaction: Option<CompactionSetup>,
    /// A topic with time-based retention and its own writers and readers, or none.
    pub retention: Option<RetentionSetup>,
    /// An impostor: a client that writes as producer ids nobody was handed out.
    pub impostor: bool,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Config {
    /// A configuration drawn from the seed: fault rates and workload sizes vary from seed to
    /// seed so that some runs are gentle and some brutal.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed_c0ff_ee00_0000);
        Self {
            seed,
            faults: true,
            partitions: rng.range(1, 3) as i32,
            idempotent_producers: rng.range(0, 2) as u32,
            transactional_ids: rng.range(1, 2) as u32,
            instances_per_id: rng.range(1, 2) as u32,
            consumers: rng.range(1, 3) as u32,
            processors: rng.range(0, 3) as u32,
            input_producers: rng.range(1, 2) as u32,
            pipeline_partitions: (rng.range(1, 3) as i32, rng.range(1, 2) as i32),
            session_timeout_ms: *rng.pick(&[1_000, 3_000, 10_000]),
            ops_per_client: rng.range(2, 8) as u32,
            drop_per_mille: *rng.pick(&[0, 10, 50, 100]),
            duplicate_per_mille: *rng.pick(&[0, 20, 100]),
            slow_per_mille: *rng.pick(&[0, 20, 100]),
            fault_interval_ms: *rng.pick(&[200, 1_000, 5_000]),
            client_timeout_ms: *rng.pick(&[500, 1_500, 3_000]),
            transaction_timeout_ms: *rng.pick(&[2_000, 5_000, 20_000]),
            // Drawn last, so the rest of a seed's configuration is what it was before ingestion
            // was simulated.
            ingest_clients: rng.range(0, 2) as u32,
            ingest_processes: rng.range(1, 2) as u32,
            ingest_lease_ms: *rng.pick(&[1_000, 5_000, kafdo_ingest::DEFAULT_LEASE_MS]),
            // At least twice `scripts::MAX_BEGIN_LATENCY_MS`, so a client has a window to retry.
            ingest_ttl_ms: *rng.pick(&[60_000, 120_000]),
            roll_epoch: *rng.pick(&[kafdo_txn_coordinator::DEFAULT_ROLL_EPOCH, 2, 3, 6]),
            // Drawn last of all, so every other part of a seed's configuration is what it was
            // before compaction was simulated; seeds without it run exactly as before.
            compaction: Self::draw_compaction(&mut rng),
            // Drawn after compaction, for the same reason.
            retention: Self::draw_retention(&mut rng),
            // Drawn after retention, for the same reason.
            impostor: rng.chance(250),
            bugs: Bugs::default(),
        }
    }

    fn draw_retention(rng: &mut Rng) -> Option<RetentionSetup> {
        if !rng.chance(250) {
            return None;
        }
        Some(RetentionSetup {
            partitions: rng.range(1, 2) as i32,
            idempotent_producers: rng.range(1, 2) as u32,
            transactional_ids: rng.range(1, 2) as u32,
            consumers: rng.range(1, 2) as u32,
            // Short enough that records expire within a run, long enough that some appends
            // find rows that have not.
            retention_ms: *rng.pick(&[200, 1_000, 3_000, 10_000]),
        })
    }

    fn draw_compaction(rng: &mut Rng) -> Option<CompactionSetup> {
        if !rng.chance(300) {
            return None;
        }
        Some(CompactionSetup {
            partitions: rng.range(1, 2) as i32,
            idempotent_producers: rng.range(0, 2) as u32,
            transactional_ids: rng.range(1, 2) as u32,
            consumers: rng.range(1, 2) as u32,
            // An hour outlives every run (`MAX_RUN_MS`), so its tombstones stay; the short ones
            // expire within a run.
            delete_retention_ms: *rng.pick(&[300, 3_000, 3_600_000, 3_600_000]),
            compaction_interval_ms: *rng.pick(&[0, 200, 1_000]),
        })
    }
}

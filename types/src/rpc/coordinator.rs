//! Calls to a transaction coordinator ([`Object::Coordinator`](super::Object::Coordinator),
//! named by the transactional id).

use serde::{Deserialize, Serialize};

use super::TxnResult;
use crate::api::{InitProducerRequest, InitProducerResponse};
use crate::txn::{
    AddOffsetsRequest, CoordinatorAddPartitions, EndTxnRequest, EndTxnResponse, OpenTransaction,
    TransactionDescription,
};

object_calls! {
    /// A call to a transaction coordinator (`kafdo_txn_coordinator::TxnCoordinator`).
    pub enum CoordinatorCall: Coordinator {
        /// `POST /v1/producers` with this transactional id: bump the epoch, fence the old one.
        Init(InitProducerRequest) -> InitProducerResponse = "/txn/init",
        /// Registers partitions with the open transaction (and the transaction with them).
        AddPartitions(CoordinatorAddPartitions) -> () = "/txn/add-partitions",
        /// Adds consumer offsets to the open transaction.
        AddOffsets(AddOffsetsRequest) -> () = "/txn/add-offsets",
        /// Commits or aborts; answers once every marker is written.
        End(EndTxnCall) -> EndTxnResponse = "/txn/end",
        /// An administrator aborts whatever is open.
        AdminAbort(AdminAbortRequest) -> EndTxnResponse = "/txn/admin-abort",
        /// The state, producer id and epoch, partitions.
        Describe(DescribeTxnRequest) -> TransactionDescription = "/txn/describe",
        /// The open transaction, if any (for the admin's list).
        OpenTransaction(OpenTransactionRequest) -> Option<OpenTransaction>
            = "/txn/open-transaction",
    }
}

/// [`CoordinatorCall::End`]: a commit or an abort.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndTxnCall {
    /// The producer id and epoch of the transaction to end.
    pub request: EndTxnRequest,
    /// Commit or abort.
    pub result: TxnResult,
}

/// [`CoordinatorCall::AdminAbort`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAbortRequest;

/// [`CoordinatorCall::Describe`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeTxnRequest;

/// [`CoordinatorCall::OpenTransaction`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTransactionRequest;

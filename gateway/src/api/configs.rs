//! DescribeConfigs: a topic's configuration in Kafka's names (the ones
//! [`super::topics::topic_config`] maps), and the few broker configs clients read.

use futures_util::future::join_all;
use kafdo_types::api::{CleanupPolicy, TopicConfig};
use kafdo_types::limits;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::Gateway;
use crate::errors;

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Kafka's config sources and types (DescribeConfigs v1 and v3 on).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// One config as described: name, value, type, whether it was set rather than defaulted.
struct Config {
    name: &'static str,
    value: String,
    kind: i8,
    source: i8,
}

impl Gateway {
    pub(super) async fn describe_configs(
        &self,
        request: DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let results = join_all(
            request
                .resources
                .iter()
                .map(|resource| self.describe_resource(resource, version)),
        )
        .await;
        DescribeConfigsResponse::default().with_results(results)
    }

    async fn describe_resource(
        &self,
        resource: &DescribeConfigsResource,
        version: i16,
    ) -> DescribeConfigsResult {
        let answer = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let configs = match resource.resource_type {
            TOPIC => self
                .kafdo
                .describe_topic(resource.resource_name.as_str())
                .await
                .map(|topic| topic_configs(&topic.config))
                .map_err(|e| errors::from_client(&e)),
            BROKER if resource.resource_name.as_str() == "0" => Ok(broker_configs()),
            BROKER => Err((
                ResponseError::InvalidRequest,
                format!(
                    "no broker {:?}: the only broker is 0",
                    resource.resource_name.as_str()
                ),
            )),
            other => Err((
                ResponseError::InvalidRequest,
                format!("resource type {other}: Kafdo describes topics (2) and the broker (4)"),
            )),
        };
        match configs {
            Ok(configs) => {
                let wanted = resource.configuration_keys.as_ref();
                answer.with_configs(
                    configs
                        .into_iter()
                        .filter(|c| {
                            wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
                        })
                        .map(|c| {
                            let mut result = DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(c.name))
                                .with_value(Some(StrBytes::from_string(c.value)))
                                .with_read_only(
                                    c.source != DYNAMIC_TOPIC_CONFIG && c.source != DEFAULT_CONFIG,
                                )
                                .with_config_source(c.source);
                            if version >= 3 {
                                result.config_type = c.kind;
                            }
                            result
                        })
                        .collect(),
                )
            }
            Err((code, message)) => {
                tracing::debug!(?code, %message, "DescribeConfigs: a resource failed");
                answer
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message)))
            }
        }
    }
}

fn topic_configs(config: &TopicConfig) -> Vec<Config> {
    let defaults = TopicConfig::default();
    let source = |set: bool| {
        if set {
            DYNAMIC_TOPIC_CONFIG
        } else {
            DEFAULT_CONFIG
        }
    };
    vec![
        Config {
            name: "cleanup.policy",
            value: match config.cleanup_policy {
                CleanupPolicy::Delete => "delete",
                CleanupPolicy::Compact => "compact",
            }
            .into(),
            kind: LIST,
            source: source(config.cleanup_policy != defaults.cleanup_policy),
        },
        Config {
            name: "retention.ms",
            value: config.retention_ms.to_string(),
            kind: LONG,
            source: source(config.retention_ms != defaults.retention_ms),
        },
        Config {
            name: "max.message.bytes",
            value: limits::MAX_RECORD_BYTES.to_string(),
            kind: INT,
            source: DEFAULT_CONFIG,
        },
    ]
}

fn broker_configs() -> Vec<Config> {
    vec![
        Config {
            name: "message.max.bytes",
            value: limits::MAX_RECORD_BYTES.to_string(),
            kind: INT,
            source: STATIC_BROKER_CONFIG,
        },
        Config {
            name: "num.partitions",
            value: "1".into(),
            kind: INT,
            source: STATIC_BROKER_CONFIG,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn a_topic_set_config_is_dynamic_and_the_rest_default() {
        let configs = topic_configs(&TopicConfig {
            retention_ms: 60_000,
            cleanup_policy: CleanupPolicy::Delete,
        });
        let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("60000", DYNAMIC_TOPIC_CONFIG)
        );
        let cleanup = configs.iter().find(|c| c.name == "cleanup.policy").unwrap();
        assert_eq!(
            (cleanup.value.as_str(), cleanup.source),
            ("delete", DEFAULT_CONFIG)
        );
    }

    #[test]
    fn every_offered_version_encodes() {
        let (low, high) = super::super::offered(ApiKey::DescribeConfigs).unwrap();
        for version in low..=high {
            let answer =
                DescribeConfigsResponse::default().with_results(vec![
                    DescribeConfigsResult::default()
                        .with_configs(vec![DescribeConfigsResourceResult::default()
                            .with_config_type(if version >= 3 { LONG } else { 0 })]),
                    DescribeConfigsResult::default().with_error_code(3),
                ]);
            answer
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}

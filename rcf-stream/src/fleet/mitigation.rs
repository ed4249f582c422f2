//! Mitigation actions and tasks, with Device Defender's names and parameters.
//!
//! Actions are defined in the fleet configuration's `mitigationActions` list, each a
//! `CreateMitigationAction` request (`actionName`, `actionParams` with exactly one of the
//! members below). The engine runs two itself; the others go to a user-supplied [`Executor`]
//! (a webhook, a command, a Python callable): rcf does not talk to AWS.
//!
//! | type | `actionParams` member | run by |
//! |---|---|---|
//! | `ADD_THINGS_TO_THING_GROUP` | `addThingsToThingGroupParams {thingGroupNames (1-10), overrideDynamicGroups}` | the engine's thing groups (quarantine; [`Engine::release`](super::Engine::release) undoes it) |
//! | `PUBLISH_FINDING_TO_SNS` | `publishFindingToSnsParams {topicArn}` | the engine: the violation goes to the sink named `topicArn` |
//! | `REPLACE_DEFAULT_POLICY_VERSION` | `replaceDefaultPolicyVersionParams {templateName: BLANK_POLICY}` | the executor |
//! | `UPDATE_DEVICE_CERTIFICATE` | `updateDeviceCertificateParams {action: DEACTIVATE}` | the executor |
//! | `UPDATE_CA_CERTIFICATE` | `updateCACertificateParams {action: DEACTIVATE}` | the executor |
//! | `ENABLE_IOT_LOGGING` | `enableIoTLoggingParams {roleArnForLogging, logLevel}` | the executor |
//!
//! Tasks follow `StartDetectMitigationActionsTask`: targets by 1 to 25 violation ids or by
//! profile and behaviour (optionally an occurrence range, only active violations, suppressed
//! ones too), 1 to 5 actions run in order per violation, a failure skips the rest for that
//! violation, a `clientRequestToken` makes a repeated start return the first task, and a
//! cancel stops what has not run without rolling back what has. A behaviour's
//! `rcf.mitigationActions` (action names) run automatically, as a task of their own, when it
//! goes `in-alarm`.

use std::io::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::engine::FleetError;
use super::profile::ProfileError;

/// The six action types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionType {
    /// `ADD_THINGS_TO_THING_GROUP`.
    AddThingsToThingGroup,
    /// `PUBLISH_FINDING_TO_SNS`.
    PublishFindingToSns,
    /// `REPLACE_DEFAULT_POLICY_VERSION`.
    ReplaceDefaultPolicyVersion,
    /// `UPDATE_DEVICE_CERTIFICATE`.
    UpdateDeviceCertificate,
    /// `UPDATE_CA_CERTIFICATE`.
    UpdateCaCertificate,
    /// `ENABLE_IOT_LOGGING`.
    EnableIotLogging,
}

const TYPES: [(ActionType, &str, &str); 6] = [
    (
        ActionType::AddThingsToThingGroup,
        "ADD_THINGS_TO_THING_GROUP",
        "addThingsToThingGroupParams",
    ),
    (
        ActionType::PublishFindingToSns,
        "PUBLISH_FINDING_TO_SNS",
        "publishFindingToSnsParams",
    ),
    (
        ActionType::ReplaceDefaultPolicyVersion,
        "REPLACE_DEFAULT_POLICY_VERSION",
        "replaceDefaultPolicyVersionParams",
    ),
    (
        ActionType::UpdateDeviceCertificate,
        "UPDATE_DEVICE_CERTIFICATE",
        "updateDeviceCertificateParams",
    ),
    (
        ActionType::UpdateCaCertificate,
        "UPDATE_CA_CERTIFICATE",
        "updateCACertificateParams",
    ),
    (
        ActionType::EnableIotLogging,
        "ENABLE_IOT_LOGGING",
        "enableIoTLoggingParams",
    ),
];

impl ActionType {
    /// The wire name (`ADD_THINGS_TO_THING_GROUP` ...).
    pub fn as_str(self) -> &'static str {
        TYPES.iter().find(|t| t.0 == self).expect("listed").1
    }
}

/// A defined mitigation action.
#[derive(Debug, Clone, PartialEq)]
pub struct MitigationAction {
    /// `actionName`.
    pub name: String,
    /// Its type.
    pub action_type: ActionType,
    /// The type's parameters (the `actionParams` member's value).
    pub params: Value,
}

impl MitigationAction {
    /// Reads a `CreateMitigationAction` request; `path` prefixes error paths.
    ///
    /// # Errors
    ///
    /// A missing or malformed field, by path.
    pub fn from_json(v: &Value, path: &str) -> Result<Self, ProfileError> {
        let err = |p: &str, reason: String| ProfileError {
            field: format!("{path}{p}"),
            reason,
        };
        let o = v
            .as_object()
            .ok_or_else(|| err("", "must be an object".into()))?;
        for k in o.keys() {
            if ![
                "actionName",
                "actionType",
                "actionParams",
                "roleArn",
                "tags",
            ]
            .contains(&k.as_str())
            {
                return Err(err(
                    &format!(".{k}"),
                    "is not a CreateMitigationAction field".into(),
                ));
            }
        }
        let name = o
            .get("actionName")
            .and_then(Value::as_str)
            .ok_or_else(|| err(".actionName", "must be a string".into()))?;
        super::profile::check_identifier(name).map_err(|r| err(".actionName", r))?;
        let params = o
            .get("actionParams")
            .and_then(Value::as_object)
            .ok_or_else(|| err(".actionParams", "must be an object".into()))?;
        if params.len() != 1 {
            return Err(err(
                ".actionParams",
                format!("must have exactly one member, has {}", params.len()),
            ));
        }
        let (member, p) = params.iter().next().expect("one");
        let &(action_type, _, _) = TYPES.iter().find(|t| t.2 == member).ok_or_else(|| {
            err(
                &format!(".actionParams.{member}"),
                format!(
                    "is not one of {}",
                    TYPES.iter().map(|t| t.2).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let at = format!(".actionParams.{member}");
        let p = p
            .as_object()
            .ok_or_else(|| err(&at, "must be an object".into()))?;
        let text = |k: &str| p.get(k).and_then(Value::as_str);
        match action_type {
            ActionType::AddThingsToThingGroup => {
                let groups = p
                    .get("thingGroupNames")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        err(&format!("{at}.thingGroupNames"), "must be a list".into())
                    })?;
                if !(1..=10).contains(&groups.len()) {
                    return Err(err(
                        &format!("{at}.thingGroupNames"),
                        format!("must name 1 to 10 groups, names {}", groups.len()),
                    ));
                }
                for (i, g) in groups.iter().enumerate() {
                    let g = g.as_str().ok_or_else(|| {
                        err(
                            &format!("{at}.thingGroupNames[{i}]"),
                            "must be a string".into(),
                        )
                    })?;
                    super::profile::check_identifier(g)
                        .map_err(|r| err(&format!("{at}.thingGroupNames[{i}]"), r))?;
                }
            }
            ActionType::PublishFindingToSns => {
                if text("topicArn").is_none_or(str::is_empty) {
                    return Err(err(
                        &format!("{at}.topicArn"),
                        "must name a sink (a sink spec's name, e.g. webhook=http://...)".into(),
                    ));
                }
            }
            ActionType::ReplaceDefaultPolicyVersion => {
                if text("templateName") != Some("BLANK_POLICY") {
                    return Err(err(
                        &format!("{at}.templateName"),
                        "must be BLANK_POLICY".into(),
                    ));
                }
            }
            ActionType::UpdateDeviceCertificate | ActionType::UpdateCaCertificate => {
                if text("action") != Some("DEACTIVATE") {
                    return Err(err(&format!("{at}.action"), "must be DEACTIVATE".into()));
                }
            }
            ActionType::EnableIotLogging => {
                if text("roleArnForLogging").is_none_or(str::is_empty) {
                    return Err(err(
                        &format!("{at}.roleArnForLogging"),
                        "must be a string".into(),
                    ));
                }
                if !matches!(
                    text("logLevel"),
                    Some("DEBUG" | "INFO" | "ERROR" | "WARN" | "DISABLED")
                ) {
                    return Err(err(
                        &format!("{at}.logLevel"),
                        "must be DEBUG, INFO, ERROR, WARN or DISABLED".into(),
                    ));
                }
            }
        }
        Ok(MitigationAction {
            name: name.to_string(),
            action_type,
            params: Value::Object(p.clone()),
        })
    }

    /// The action as `DescribeMitigationAction` shows it.
    pub fn to_json(&self) -> Value {
        let member = TYPES
            .iter()
            .find(|t| t.0 == self.action_type)
            .expect("listed")
            .2;
        let mut params = Map::new();
        params.insert(member.into(), self.params.clone());
        json!({"actionName": self.name, "actionType": self.action_type.as_str(),
               "actionParams": params})
    }
}

/// Runs the actions the engine does not run itself.
pub trait Executor: Send {
    /// Runs `action` for `violation` (its `in-alarm` event JSON, or the active violation).
    ///
    /// # Errors
    ///
    /// The action failed (the task records the message and skips the violation's remaining
    /// actions).
    fn execute(&mut self, action: &MitigationAction, violation: &Value) -> Result<(), String>;
}

/// The request an executor receives, as JSON: `{"actionName", "actionType", "actionParams",
/// "violation"}`.
pub fn execution_request(action: &MitigationAction, violation: &Value) -> Value {
    let mut v = action.to_json();
    v["violation"] = violation.clone();
    v
}

/// An executor that POSTs [`execution_request`] to a URL; a 2xx answer is success.
#[cfg(feature = "net")]
pub struct WebhookExecutor {
    url: String,
    agent: ureq::Agent,
}

#[cfg(feature = "net")]
impl std::fmt::Debug for WebhookExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookExecutor")
            .field("url", &self.url)
            .finish()
    }
}

#[cfg(feature = "net")]
impl WebhookExecutor {
    /// Posts to `url` (`http://...`), each request within `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Self {
        WebhookExecutor {
            url: url.to_string(),
            agent: super::sink::http_agent(timeout),
        }
    }
}

#[cfg(feature = "net")]
impl Executor for WebhookExecutor {
    fn execute(&mut self, action: &MitigationAction, violation: &Value) -> Result<(), String> {
        super::sink::post_json(
            &self.agent,
            &self.url,
            &execution_request(action, violation),
        )
    }
}

/// An executor that runs a program with [`execution_request`] on its standard input; exit
/// status 0 is success, anything else (or running past the timeout: killed) a failure whose
/// message is the program's standard error.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl CommandExecutor {
    /// Runs `program` with `args`, each run within `timeout`.
    pub fn new(program: &str, args: &[String], timeout: Duration) -> Self {
        CommandExecutor {
            program: program.to_string(),
            args: args.to_vec(),
            timeout,
        }
    }
}

impl Executor for CommandExecutor {
    fn execute(&mut self, action: &MitigationAction, violation: &Value) -> Result<(), String> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        let body = execution_request(action, violation).to_string();
        if let Some(mut stdin) = child.stdin.take() {
            // a program that does not read its input still gets judged by its exit status
            let _ = stdin.write_all(body.as_bytes());
        }
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} exited with {status}: {}",
                            self.program,
                            err.trim()
                        ))
                    };
                }
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} ran past {:?} and was killed",
                        self.program, self.timeout
                    ));
                }
                Err(e) => return Err(format!("waiting for {}: {e}", self.program)),
            }
        }
    }
}

/// A parsed `StartDetectMitigationActionsTask` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskRequest {
    pub(crate) task_id: String,
    pub(crate) violation_ids: Vec<String>,
    pub(crate) profile_behavior: Option<(String, Option<String>)>,
    pub(crate) actions: Vec<String>,
    pub(crate) range: Option<(i64, i64)>,
    pub(crate) only_active: bool,
    pub(crate) include_suppressed: bool,
    pub(crate) token: Option<String>,
}

impl TaskRequest {
    pub(crate) fn from_json(v: &Value) -> Result<Self, FleetError> {
        let bad =
            |name: &'static str, reason: String| FleetError::InvalidParameter { name, reason };
        let o = v
            .as_object()
            .ok_or_else(|| bad("task", "must be a JSON object".into()))?;
        let task_id = o
            .get("taskId")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("taskId", "must be a string".into()))?;
        super::profile::check_identifier(task_id).map_err(|r| bad("taskId", r))?;
        let target = o
            .get("target")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("target", "must be an object".into()))?;
        let violation_ids: Vec<String> = match target.get("violationIds") {
            None => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("target.violationIds", "must be a list of strings".into()))?,
            Some(_) => return Err(bad("target.violationIds", "must be a list".into())),
        };
        let profile = target.get("securityProfileName").and_then(Value::as_str);
        let behavior = target.get("behaviorName").and_then(Value::as_str);
        let profile_behavior = match (profile, behavior, violation_ids.is_empty()) {
            (None, None, false) => {
                if violation_ids.len() > 25 {
                    return Err(bad(
                        "target.violationIds",
                        format!("must hold 1 to 25 ids, holds {}", violation_ids.len()),
                    ));
                }
                None
            }
            (Some(p), b, true) => Some((p.to_string(), b.map(str::to_string))),
            _ => {
                return Err(bad(
                    "target",
                    "must give either violationIds or securityProfileName (and behaviorName)"
                        .into(),
                ));
            }
        };
        let actions: Vec<String> = o
            .get("actions")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("actions", "must be a list of action names".into()))?;
        if !(1..=5).contains(&actions.len()) {
            return Err(bad(
                "actions",
                format!("must name 1 to 5 actions, names {}", actions.len()),
            ));
        }
        let range = match o.get("violationEventOccurrenceRange") {
            None => None,
            Some(r) => {
                let t = |k: &str| {
                    r.get(k)
                        .ok_or_else(|| format!("{k} is missing"))
                        .and_then(super::time::parse_json)
                        .map_err(|e| bad("violationEventOccurrenceRange", e))
                };
                Some((t("startTime")?, t("endTime")?))
            }
        };
        let flag = |k: &'static str| -> Result<bool, FleetError> {
            match o.get(k) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(k, "must be true or false".into())),
            }
        };
        Ok(TaskRequest {
            task_id: task_id.to_string(),
            violation_ids,
            profile_behavior,
            actions,
            range,
            only_active: flag("includeOnlyActiveViolations")?,
            include_suppressed: flag("includeSuppressedAlerts")?,
            token: o
                .get("clientRequestToken")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_with_device_defenders_shapes_and_errors_have_paths() {
        let a = MitigationAction::from_json(
            &json!({"actionName": "quarantine", "actionParams": {"addThingsToThingGroupParams":
                {"thingGroupNames": ["quarantine"], "overrideDynamicGroups": false}}}),
            "mitigationActions[0]",
        )
        .unwrap();
        assert_eq!(a.action_type, ActionType::AddThingsToThingGroup);
        assert_eq!(a.to_json()["actionType"], "ADD_THINGS_TO_THING_GROUP");
        for (v, path) in [
            (
                json!({"actionName": "x", "actionParams": {}}),
                ".actionParams",
            ),
            (
                json!({"actionName": "x", "actionParams": {"fooParams": {}}}),
                ".fooParams",
            ),
            (
                json!({"actionName": "x", "actionParams": {"addThingsToThingGroupParams": {"thingGroupNames": []}}}),
                ".thingGroupNames",
            ),
            (
                json!({"actionName": "x", "actionParams": {"updateDeviceCertificateParams": {"action": "DELETE"}}}),
                ".action",
            ),
            (json!({"actionParams": {}}), ".actionName"),
        ] {
            let e = MitigationAction::from_json(&v, "m").unwrap_err();
            assert!(e.field.contains(path), "{e}");
        }
    }

    #[test]
    fn task_requests_follow_the_api_limits() {
        let ok = TaskRequest::from_json(&json!({"taskId": "t1", "target": {"violationIds": ["a"]},
            "actions": ["quarantine"], "clientRequestToken": "tok"}))
        .unwrap();
        assert_eq!(ok.token.as_deref(), Some("tok"));
        for (v, name) in [
            (
                json!({"taskId": "t", "target": {}, "actions": ["a"]}),
                "target",
            ),
            (
                json!({"taskId": "t", "target": {"violationIds": ["a"]}, "actions": []}),
                "actions",
            ),
            (
                json!({"taskId": "t", "target": {"violationIds": ["a"]}, "actions": ["1","2","3","4","5","6"]}),
                "actions",
            ),
            (
                json!({"taskId": "t", "target": {"violationIds": (0..26).map(|i| i.to_string()).collect::<Vec<_>>()}, "actions": ["a"]}),
                "violationIds",
            ),
        ] {
            let e = TaskRequest::from_json(&v).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}

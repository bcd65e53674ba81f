//! `admit --model PROVIDER/MODEL`: a model a run may use; a scripted model is admitted
//! by its script's digest, an endpoint by its URL.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::home::Home;
use crate::id::ModelAdmissionId;
use crate::ledger::events::{Body, ModelAdmissionRec, ObjRec};

#[derive(Serialize)]
pub(crate) struct ModelAdmitOut {
    pub admission: ModelAdmissionRec,
    pub already: bool,
}

/// Admits a PROVIDER/MODEL pair; an already admitted, unrevoked pair is left as it is.
/// What `admit --model` admits besides the name.
#[derive(Default)]
pub(crate) struct ModelArgs<'a> {
    /// The URL it is served at (`--endpoint`).
    pub endpoint: Option<&'a str>,
    /// The API spoken there (`--api`, default `openai-completions`).
    pub api: Option<&'a str>,
    /// For `scripted/NAME`: the fixture holding `model-scripts/NAME.json` (default: built-in).
    pub fixture: Option<&'a str>,
}

pub(crate) fn admit_model(home: &mut Home, spec: &str, a: &ModelArgs) -> Result<ModelAdmitOut> {
    use crate::model;
    let (provider, model_name) = ModelAdmissionRec::parse_pair(spec)?;
    let mut rec = ModelAdmissionRec {
        id: ModelAdmissionId::new(),
        provider,
        model: model_name,
        endpoint: None,
        api: None,
        script: None,
        script_path: None,
    };
    if rec.provider == model::SCRIPTED {
        if a.endpoint.is_some() || a.api.is_some() {
            return Err(Error::bad_input(
                format!("--endpoint and --api do not apply to {spec}: the harness serves the scripted model itself"),
                format!("admit it alone: cto-ledger admit --model {spec}"),
            ));
        }
        let fx =
            crate::stage2::fixture::load(a.fixture.unwrap_or(crate::stage2::fixture::BUILTIN))?;
        let Some(bytes) = fx.script(&rec.model) else {
            let have: Vec<&str> = fx.model_scripts.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::bad_input(
                format!(
                    "fixture {} has no model script model-scripts/{}.json",
                    fx.origin, rec.model
                ),
                if have.is_empty() {
                    "add one, or name a fixture that has one with --fixture".to_string()
                } else {
                    format!("its scripts: {}", have.join(", "))
                },
            ));
        };
        let meta = home.store.put_bytes(bytes)?;
        rec.script = Some(ObjRec::new(meta, crate::store::tree::ObjKind::Blob));
        rec.script_path = Some(format!("{}/model-scripts/{}.json", fx.origin, rec.model));
        if let Some(m) = home.ledger.scripted_admission(&rec.model, &meta.id)? {
            rec.id = m.id;
            return Ok(ModelAdmitOut {
                admission: rec,
                already: true,
            });
        }
    } else if let Some(url) = a.endpoint {
        if model::Endpoint::parse(url).is_none() {
            return Err(Error::bad_input(
                format!("--endpoint `{url}` is not an http:// or https:// URL with a host (and no user, query or fragment)"),
                "give the API's base URL, e.g. --endpoint http://127.0.0.1:8080/v1",
            ));
        }
        let api = a.api.unwrap_or(model::API);
        if api != model::API {
            return Err(Error::bad_input(
                format!("--api `{api}` is not supported"),
                format!(
                    "the harness speaks {} (OpenAI-compatible chat completions)",
                    model::API
                ),
            ));
        }
        rec.endpoint = Some(url.trim_end_matches('/').to_string());
        rec.api = Some(api.to_string());
    } else if a.api.is_some() {
        return Err(Error::bad_input(
            "--api needs --endpoint",
            "give the URL the model is served at with --endpoint",
        ));
    }
    if rec.script.is_none() {
        if let Some(m) = home
            .ledger
            .model_admission_of(&rec.provider, &rec.model, true)?
        {
            if m.endpoint == rec.endpoint && m.api == rec.api {
                rec.id = m.id;
                return Ok(ModelAdmitOut {
                    admission: rec,
                    already: true,
                });
            }
        }
    }
    home.commit(vec![Body::ModelAdmission(rec.clone())])?;
    Ok(ModelAdmitOut {
        admission: rec,
        already: false,
    })
}

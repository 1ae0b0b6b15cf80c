//! Embeddings from an OpenAI-compatible API: `POST {base_url}/embeddings` with
//! `{"model", "input": [..]}`, answered by `{"data": [{"index", "embedding"}]}` (OpenAI,
//! Ollama's `/v1`, llama.cpp's server).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ureq::Agent;

use super::{EmbedError, Embedder, normalize};

/// A batch of passages may take the endpoint a while on a CPU.
const TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpEmbedder {
    agent: Agent,
    url: String,
    model: String,
    dimension: usize,
    id: String,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [&'a str],
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl HttpEmbedder {
    /// Checks the endpoint with one request, which also tells the dimension.
    pub fn connect(base_url: &str, model: &str) -> Result<Self, EmbedError> {
        let url = format!("{}/embeddings", base_url.trim_end_matches('/'));
        if !base_url.starts_with("http://") {
            return Err(EmbedError::Http {
                url,
                reason: "only plain http:// endpoints are supported (a local server such as \
                         Ollama); this build has no TLS"
                    .into(),
            });
        }
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        let mut embedder = Self {
            agent,
            url,
            model: model.to_owned(),
            dimension: 0,
            id: String::new(),
        };
        let probe = embedder.request(&["dimension probe"])?;
        embedder.dimension = probe[0].len();
        embedder.id = format!("{model}:http:{base_url}:{}", embedder.dimension);
        Ok(embedder)
    }

    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let failed = |reason: String| EmbedError::Http {
            url: self.url.clone(),
            reason,
        };
        let response: Response = self
            .agent
            .post(&self.url)
            .send_json(Request {
                model: &self.model,
                input: texts,
            })
            .map_err(|error| failed(error.to_string()))?
            .body_mut()
            .read_json()
            .map_err(|error| failed(format!("the answer is not an embeddings list: {error}")))?;
        let mut vectors = vec![Vec::new(); texts.len()];
        for item in response.data {
            let slot = vectors
                .get_mut(item.index)
                .ok_or_else(|| failed(format!("index {} is out of range", item.index)))?;
            *slot = normalize(item.embedding);
        }
        if let Some(position) = vectors.iter().position(|vector| {
            vector.is_empty() || (self.dimension > 0 && vector.len() != self.dimension)
        }) {
            return Err(failed(format!(
                "no vector of the expected size for input {position}"
            )));
        }
        Ok(vectors)
    }
}

impl Embedder for HttpEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.request(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_endpoints_are_refused_before_any_request() {
        match HttpEmbedder::connect("https://api.example.com/v1", "m") {
            Err(EmbedError::Http { url, reason }) => {
                assert_eq!(url, "https://api.example.com/v1/embeddings");
                assert!(reason.contains("http://"), "{reason}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("connected to an https endpoint"),
        }
    }
}

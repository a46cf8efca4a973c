//! Quality of the Rampart PII pipeline on real sentences, with the real model.
//!
//! Needs `cerulean models pull rampart-pii onnxruntime` (files under `$CERULEAN_HOME/models`);
//! without them every test here fails and says so.

use std::sync::{Mutex, OnceLock};

use cerulean_cognitive::pii::{
    self, PiiEntity, PiiPipeline, PiiRecognizer, general_entities, redact, redact_categories,
};
use cerulean_cognitive::pipeline::TextPipeline;
use cerulean_models::{EntryStatus, ModelStore};
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::tensor::BytesElements;

const REFERENCE: &str = "Hi, I'm John Smith. Email me at john.smith@example.com or call 415-555-0132. I live at 221 Baker Street, Springfield, IL 62704.";

fn pipeline() -> &'static PiiPipeline {
    static PIPELINE: OnceLock<PiiPipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let store = ModelStore::from_env();
        let dir = pii::model_dir(&store);
        // The pinned files, checked against the manifest's sizes and sha256.
        let entry = store
            .manifest()
            .entry(pii::MODEL_NAME)
            .expect("models/manifest.toml has the rampart-pii entry");
        let status = store.status(entry);
        assert_eq!(
            status,
            EntryStatus::Installed,
            "the Rampart model files under {} are {status}: run `cerulean models pull rampart-pii` \
             (or set CERULEAN_HOME to where it was pulled)",
            dir.display()
        );
        let library = store.onnxruntime_library();
        assert!(
            library.is_some(),
            "the ONNX Runtime library is not installed under {}: run `cerulean models pull onnxruntime` \
             (and `cerulean models pull rampart-pii`), or set CERULEAN_HOME",
            store.models_dir().display()
        );
        let options = BackendOptions {
            onnxruntime_library: library,
            ..BackendOptions::default()
        };
        PiiPipeline::load(&dir, options).unwrap_or_else(|e| {
            panic!(
                "cannot load the Rampart model from {}: {e}\nrun `cerulean models pull rampart-pii` \
                 (or set CERULEAN_HOME to where it was pulled)",
                dir.display()
            )
        })
    })
}

fn recognizer() -> std::sync::MutexGuard<'static, PiiRecognizer> {
    static RECOGNIZER: OnceLock<Mutex<PiiRecognizer>> = OnceLock::new();
    RECOGNIZER
        .get_or_init(|| Mutex::new(pipeline().recognizer().expect("ONNX Runtime session")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn find<'a>(entities: &'a [PiiEntity], category: &str, text: &str) -> &'a PiiEntity {
    entities
        .iter()
        .find(|e| e.category == category && e.text == text)
        .unwrap_or_else(|| panic!("no {category} '{text}' in {entities:#?}"))
}

/// Every entity's text is what its code-point offset and length select.
fn check_offsets(text: &str, entities: &[PiiEntity]) {
    let chars: Vec<char> = text.chars().collect();
    for e in entities {
        let selected: String = chars[e.offset..e.offset + e.length].iter().collect();
        assert_eq!(selected, e.text, "{e:?}");
        assert!((0.0..=1.0).contains(&e.confidence_score), "{e:?}");
    }
}

#[test]
fn reference_sentence() {
    let entities = recognizer().recognize(REFERENCE).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&entities).unwrap());
    check_offsets(REFERENCE, &entities);

    find(&entities, "Person", "John Smith");
    find(&entities, "Email", "john.smith@example.com");
    find(&entities, "PhoneNumber", "415-555-0132");
    let address = find(
        &entities,
        "Address",
        "221 Baker Street, Springfield, IL 62704",
    );
    assert_eq!(address.offset, 87);
    assert_eq!(address.length, 39);
    let city = find(&entities, "Location", "Springfield");
    assert_eq!(city.subcategory.as_deref(), Some("City"));
    let state = find(&entities, "Location", "IL");
    assert_eq!(state.subcategory.as_deref(), Some("State"));
    // Nothing else: no fragments.
    assert_eq!(entities.len(), 6, "{entities:#?}");

    assert_eq!(
        redact(REFERENCE, &entities),
        "Hi, I'm **********. Email me at ********************** or call ************. I live at ***************************************."
    );

    let (kept, redacted) = redact_categories(REFERENCE, &entities, &["Email", "PhoneNumber"]);
    assert_eq!(kept.len(), 2);
    assert_eq!(
        redacted,
        "Hi, I'm John Smith. Email me at ********************** or call ************. I live at 221 Baker Street, Springfield, IL 62704."
    );

    let general = general_entities(&entities);
    assert!(general.iter().any(|e| e.category == "Person"));
    assert!(
        general
            .iter()
            .any(|e| e.category == "Location" && e.text == "Springfield")
    );
}

#[test]
fn another_name_address_and_identifiers() {
    let text = "Please send the package to Maria Garcia, 48 Oak Lane, Portland, OR 97201. \
                Her number is (503) 555-0187 and her SSN is 123-45-6789.";
    let entities = recognizer().recognize(text).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&entities).unwrap());
    check_offsets(text, &entities);
    find(&entities, "Person", "Maria Garcia");
    // "OR" is unsure on its own (it could be the word "or"); beside a city and a ZIP code it is
    // the state.
    find(&entities, "Address", "48 Oak Lane, Portland, OR 97201");
    find(&entities, "Location", "Portland");
    find(&entities, "Location", "OR");
    find(&entities, "PhoneNumber", "(503) 555-0187");
    find(&entities, "USSocialSecurityNumber", "123-45-6789");
    assert_eq!(entities.len(), 6, "{entities:#?}");
    assert_eq!(
        redact(text, &entities),
        "Please send the package to ************, *******************************. \
         Her number is ************** and her SSN is ***********."
    );
    let general = general_entities(&entities);
    assert!(
        general
            .iter()
            .all(|e| e.category != "USSocialSecurityNumber"),
        "{general:#?}"
    );
}

#[test]
fn no_pii_means_no_entities() {
    let text = "The weather was pleasant and the meeting ended early.";
    let entities = recognizer().recognize(text).unwrap();
    assert!(entities.is_empty(), "{entities:#?}");
    assert_eq!(redact(text, &entities), text);
    assert!(recognizer().recognize("").unwrap().is_empty());
}

#[test]
fn offsets_count_code_points_after_non_ascii_text() {
    let text = "Grüße aus Köln 😀 — schreib an anna.müller@example.de oder ruf 415-555-0199 an.";
    let entities = recognizer().recognize(text).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&entities).unwrap());
    check_offsets(text, &entities);
    let phone = find(&entities, "PhoneNumber", "415-555-0199");
    assert_eq!(phone.offset, text.chars().take_while(|&c| c != '4').count());
    assert!(
        entities
            .iter()
            .any(|e| e.category == "Email" && e.text.ends_with("@example.de")),
        "{entities:#?}"
    );
    let redacted = redact(text, &entities);
    assert_eq!(redacted.chars().count(), text.chars().count());
    assert!(redacted.contains("ruf ************ an."), "{redacted}");
}

#[test]
fn long_documents_are_windowed() {
    // About 40 sentences (well over 512 tokens) with entities near the start, middle and end.
    let filler =
        "The committee reviewed the quarterly figures and agreed to meet again next week. ";
    let mut text = String::from("Contact John Smith at john.smith@example.com. ");
    for _ in 0..20 {
        text.push_str(filler);
    }
    text.push_str("Backup contact: 415-555-0132. ");
    for _ in 0..20 {
        text.push_str(filler);
    }
    text.push_str("Ship to 221 Baker Street, Springfield, IL 62704.");
    let entities = recognizer().recognize(&text).unwrap();
    check_offsets(&text, &entities);
    find(&entities, "Person", "John Smith");
    find(&entities, "Email", "john.smith@example.com");
    find(&entities, "PhoneNumber", "415-555-0132");
    find(
        &entities,
        "Address",
        "221 Baker Street, Springfield, IL 62704",
    );
    assert!(
        entities.iter().all(|e| !e.text.contains("committee")),
        "{entities:#?}"
    );
}

#[test]
fn the_pipeline_serves_entities_and_redacted_text() {
    let pipeline = pipeline();
    let names: Vec<String> = pipeline.outputs().into_iter().map(|o| o.name).collect();
    assert_eq!(names, [pii::ENTITIES_OUTPUT, pii::REDACTED_OUTPUT]);
    let mut runner = pipeline.runner().unwrap();
    let texts = [REFERENCE, "nothing to see here"];
    let outputs = runner.run(&texts).unwrap();
    assert_eq!(outputs[0].shape, vec![2, 1]);
    let rows: Vec<&[u8]> = BytesElements::new(&outputs[0].data).collect();
    let first: Vec<PiiEntity> = serde_json::from_slice(rows[0]).unwrap();
    assert!(first.iter().any(|e| e.category == "Person"));
    let second: Vec<PiiEntity> = serde_json::from_slice(rows[1]).unwrap();
    assert!(second.is_empty());
    let redacted: Vec<&[u8]> = BytesElements::new(&outputs[1].data).collect();
    assert_eq!(redacted[1], b"nothing to see here");
    assert!(
        std::str::from_utf8(redacted[0])
            .unwrap()
            .contains("**********")
    );
}

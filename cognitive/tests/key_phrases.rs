//! Key phrases on real text, through the MiniLM encoder.
//!
//! Needs the pulled models (`cerulean models pull minilm-l6-v2 onnxruntime`); a missing file fails
//! the test with that instruction.

use cerulean_cognitive::encoder::SentenceEncoder;
use cerulean_cognitive::keyphrases::{
    KEY_PHRASES_OUTPUT, KeyPhraseExtractor, KeyPhrasePipeline, is_stopword,
};
use cerulean_cognitive::pipeline::TextPipeline;
use cerulean_models::ModelStore;
use cerulean_serving::DataType;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::tensor::BytesElements;

const FOOD_AND_SERVICE: &str = "The food at this restaurant was delicious: fresh pasta, a \
    perfectly grilled steak and a rich chocolate dessert. The service, however, was slow. Our \
    waiter ignored us for twenty minutes and the staff seemed overwhelmed. Great food, poor \
    service.";

const RESTAURANT: &str = "We had dinner at Marco's last Friday. The food was outstanding: the \
    handmade pasta was perfectly cooked and the tiramisu was the best dessert I have eaten in \
    years. Service was friendly and attentive, although our waiter forgot the wine list twice. \
    Prices are reasonable for the portion sizes, and the dining room is cosy and quiet.";

const VOLCANO: &str = "Mount Etna is an active stratovolcano on the east coast of Sicily. It is \
    the highest volcano in Europe outside the Caucasus, and one of the most active volcanoes in \
    the world: eruptions of lava and ash occur several times a year. The fertile volcanic soils \
    on its slopes support vineyards and orchards.";

const BATTERY: &str = "Lithium-ion batteries store energy by moving lithium ions between the \
    anode and the cathode. Battery capacity fades with every charge cycle, and high temperatures \
    speed up the degradation. Electric vehicles manage battery temperature carefully to extend \
    battery life.";

fn extractor() -> KeyPhraseExtractor {
    let store = ModelStore::from_env();
    let encoder =
        SentenceEncoder::from_store(&store, &BackendOptions::default()).unwrap_or_else(|e| {
            panic!(
                "cannot load the MiniLM encoder from {} ({e}); run `cerulean models pull minilm-l6-v2 onnxruntime`",
                store.models_dir().display()
            )
        });
    KeyPhraseExtractor::new(encoder)
}

fn check_shape(text: &str, phrases: &[String]) {
    assert!(!phrases.is_empty(), "no phrases for {text:?}");
    assert!(phrases.len() <= 10, "{phrases:?}");
    for p in phrases {
        let words: Vec<&str> = p.split(' ').collect();
        assert!((1..=3).contains(&words.len()), "{p:?}");
        assert!(
            !is_stopword(words[0]) && !is_stopword(words[words.len() - 1]),
            "{p:?} starts or ends with a stopword"
        );
        assert!(
            text.contains(p.as_str()),
            "{p:?} is not spelled as in the text"
        );
    }
    let mut lower: Vec<String> = phrases.iter().map(|p| p.to_lowercase()).collect();
    lower.sort();
    lower.dedup();
    assert_eq!(lower.len(), phrases.len(), "duplicates in {phrases:?}");
}

fn mentions(phrases: &[String], words: &[&str]) -> bool {
    phrases.iter().any(|p| {
        let p = p.to_lowercase();
        words.iter().any(|w| p.contains(w))
    })
}

#[test]
fn a_restaurant_review_yields_food_and_service_phrases() {
    let mut extractor = extractor();
    let phrases = extractor.extract(FOOD_AND_SERVICE).unwrap();
    eprintln!("food and service: {phrases:?}");
    check_shape(FOOD_AND_SERVICE, &phrases);
    assert!(mentions(&phrases, &["food"]), "{phrases:?}");
    assert!(
        mentions(&phrases, &["service", "waiter", "staff"]),
        "{phrases:?}"
    );

    // A review about the food more than the service still names its dishes.
    let phrases = extractor.extract(RESTAURANT).unwrap();
    eprintln!("restaurant: {phrases:?}");
    check_shape(RESTAURANT, &phrases);
    assert!(
        mentions(
            &phrases,
            &["food", "pasta", "tiramisu", "dessert", "dinner", "dining"]
        ),
        "{phrases:?}"
    );
}

#[test]
fn the_azure_sample_yields_its_three_phrases() {
    // The example in Azure's key-phrase documentation; Azure returns these three phrases.
    let mut extractor = extractor();
    let text = "The food and service were unacceptable. The concierge was nice, however.";
    let phrases = extractor.extract(text).unwrap();
    eprintln!("azure sample: {phrases:?}");
    check_shape(text, &phrases);
    for expected in ["food", "service", "concierge"] {
        assert!(
            phrases.iter().any(|p| p == expected),
            "{expected} not in {phrases:?}"
        );
    }
}

#[test]
fn a_paragraph_about_a_subject_returns_the_subject() {
    let mut extractor = extractor();
    let phrases = extractor.extract(VOLCANO).unwrap();
    eprintln!("volcano: {phrases:?}");
    check_shape(VOLCANO, &phrases);
    assert!(mentions(&phrases[..3], &["etna", "volcan"]), "{phrases:?}");

    let phrases = extractor.extract(BATTERY).unwrap();
    eprintln!("battery: {phrases:?}");
    check_shape(BATTERY, &phrases);
    assert!(mentions(&phrases[..3], &["batter"]), "{phrases:?}");
}

#[test]
fn a_batch_equals_documents_one_at_a_time() {
    let mut extractor = extractor();
    let texts = [RESTAURANT, "", VOLCANO, "... !!!", BATTERY];
    let batched = extractor.extract_batch(&texts).unwrap();
    assert_eq!(batched.len(), texts.len());
    assert!(batched[1].is_empty() && batched[3].is_empty());
    for (text, phrases) in texts.iter().zip(&batched) {
        assert_eq!(&extractor.extract(text).unwrap(), phrases);
    }
}

#[test]
fn texts_without_content_words_give_no_phrases() {
    let mut extractor = extractor();
    assert!(extractor.extract("").unwrap().is_empty());
    assert!(extractor.extract("   ").unwrap().is_empty());
    assert!(extractor.extract("It is what it is.").unwrap().is_empty());
    assert!(extractor.extract_batch(&[]).unwrap().is_empty());
}

#[test]
fn a_long_document_is_read_past_the_encoder_limit() {
    let mut extractor = extractor();
    let text = [RESTAURANT; 12].join(" ");
    let phrases = extractor.extract(&text).unwrap();
    check_shape(&text, &phrases);
    assert!(
        mentions(&phrases, &["food", "pasta", "service", "dessert"]),
        "{phrases:?}"
    );
}

#[test]
fn the_pipeline_returns_a_json_array_per_document() {
    let store = ModelStore::from_env();
    let pipeline = KeyPhrasePipeline::from_store(&store, &BackendOptions::default())
        .unwrap_or_else(|e| panic!("{e}; run `cerulean models pull minilm-l6-v2 onnxruntime`"));
    let outputs = pipeline.outputs();
    assert_eq!(outputs[0].name, KEY_PHRASES_OUTPUT);
    assert_eq!(outputs[0].datatype, DataType::Bytes);
    assert_eq!(outputs[0].dims, vec![1]);
    let mut runner = pipeline.runner().unwrap();
    let tensors = runner.run(&[VOLCANO, ""]).unwrap();
    assert_eq!(tensors[0].shape, vec![2, 1]);
    let rows: Vec<Vec<String>> = BytesElements::new(&tensors[0].data)
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(!rows[0].is_empty());
    assert!(rows[1].is_empty());
}

//! Sentiment against vaderSentiment itself and on a small labelled set.
//!
//! Needs the `vader-lexicon` files pulled (`cerulean models pull vader-lexicon`); CI pulls every
//! model first.

use cerulean_cognitive::pipeline::TextPipeline;
use cerulean_cognitive::sentiment::{MODEL_ENTRY, Sentiment, SentimentAnalyzer, SentimentPipeline};
use cerulean_models::ModelStore;
use cerulean_serving::tensor::BytesElements;

fn analyzer() -> SentimentAnalyzer {
    let store = ModelStore::from_env();
    SentimentAnalyzer::from_store(&store).unwrap_or_else(|e| {
        panic!("the {MODEL_ENTRY} files are needed for this test ({e}); run `cerulean models pull {MODEL_ENTRY}`")
    })
}

/// The port gives vaderSentiment 3.3.2's own scores (`tests/fixtures/sentiment_reference.json`,
/// written by `make_sentiment_reference.py`).
#[test]
fn matches_vader_reference() {
    let analyzer = analyzer();
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/sentiment_reference.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut worst = 0.0_f64;
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let got = analyzer.polarity_scores(text);
        for (name, value) in [
            ("compound", got.compound),
            ("pos", got.pos),
            ("neu", got.neu),
            ("neg", got.neg),
        ] {
            let want = case[name].as_f64().unwrap();
            let diff = (value - want).abs();
            worst = worst.max(diff);
            assert!(
                diff < 1e-3 + 1e-9,
                "{text:?}: {name} {value} vs vaderSentiment {want}"
            );
        }
    }
    println!(
        "VADER port: {} texts match vaderSentiment 3.3.2 (largest difference {worst:.1e})",
        cases.len()
    );
}

/// Clear sentences written for this test, each with its expected label.
const LABELLED: &[(&str, Sentiment)] = &[
    (
        "I love this camera, the pictures are stunning.",
        Sentiment::Positive,
    ),
    (
        "The staff were friendly and incredibly helpful.",
        Sentiment::Positive,
    ),
    (
        "What a wonderful surprise, thank you so much!",
        Sentiment::Positive,
    ),
    (
        "This is the best pizza I have ever eaten.",
        Sentiment::Positive,
    ),
    (
        "The hotel room was clean, quiet and comfortable.",
        Sentiment::Positive,
    ),
    (
        "I am really happy with how the project turned out.",
        Sentiment::Positive,
    ),
    (
        "Great job on the presentation, everyone enjoyed it.",
        Sentiment::Positive,
    ),
    (
        "The new update makes the app much faster and easier to use.",
        Sentiment::Positive,
    ),
    (
        "Our guide was fantastic and made the tour fun.",
        Sentiment::Positive,
    ),
    (
        "I'm excited to start my new job next week!",
        Sentiment::Positive,
    ),
    (
        "The concert was amazing and the crowd was full of energy.",
        Sentiment::Positive,
    ),
    (
        "She gave me a beautiful gift for my birthday.",
        Sentiment::Positive,
    ),
    (
        "The soup was delicious and the bread was fresh.",
        Sentiment::Positive,
    ),
    (
        "Thanks for your kind support during a tough time.",
        Sentiment::Positive,
    ),
    (
        "This book is brilliant, I recommend it to everyone.",
        Sentiment::Positive,
    ),
    (
        "The kids had a great time at the park today.",
        Sentiment::Positive,
    ),
    (
        "I appreciate how patient and generous you were.",
        Sentiment::Positive,
    ),
    (
        "The garden looks lovely in the spring sunshine.",
        Sentiment::Positive,
    ),
    (
        "Winning the award was a proud moment for our team.",
        Sentiment::Positive,
    ),
    (
        "The customer service was excellent and solved my problem quickly.",
        Sentiment::Positive,
    ),
    (
        "Everything about the wedding was perfect.",
        Sentiment::Positive,
    ),
    (
        "The movie was funny and the acting was superb.",
        Sentiment::Positive,
    ),
    ("The food was cold and tasted awful.", Sentiment::Negative),
    (
        "I hate waiting in long lines at the airport.",
        Sentiment::Negative,
    ),
    (
        "The product broke after two days, what a waste of money.",
        Sentiment::Negative,
    ),
    (
        "He was rude to everyone at the meeting.",
        Sentiment::Negative,
    ),
    (
        "This is the worst service I have ever experienced.",
        Sentiment::Negative,
    ),
    (
        "The movie was boring and far too long.",
        Sentiment::Negative,
    ),
    (
        "I'm very disappointed with the quality of this jacket.",
        Sentiment::Negative,
    ),
    (
        "The room was dirty and the bed was uncomfortable.",
        Sentiment::Negative,
    ),
    (
        "Traffic was terrible and I missed my flight.",
        Sentiment::Negative,
    ),
    (
        "The instructions were confusing and useless.",
        Sentiment::Negative,
    ),
    (
        "I feel sad and lonely since my friend moved away.",
        Sentiment::Negative,
    ),
    (
        "The software keeps crashing and I lost all my work.",
        Sentiment::Negative,
    ),
    ("Their apology was fake and insulting.", Sentiment::Negative),
    (
        "The noise from the construction site is unbearable.",
        Sentiment::Negative,
    ),
    (
        "I'm angry that nobody told me about the delay.",
        Sentiment::Negative,
    ),
    (
        "The meal was overpriced and the portions were tiny and bland.",
        Sentiment::Negative,
    ),
    ("It was a painful and stressful week.", Sentiment::Negative),
    (
        "The game was a total disaster for the home team.",
        Sentiment::Negative,
    ),
    ("I regret buying this horrible phone.", Sentiment::Negative),
    (
        "The hotel lost our reservation and the manager did not care.",
        Sentiment::Negative,
    ),
    ("The train leaves at nine o'clock.", Sentiment::Neutral),
    (
        "The report has twelve pages and three tables.",
        Sentiment::Neutral,
    ),
    (
        "Please send the documents to the main office.",
        Sentiment::Neutral,
    ),
    (
        "The store is located on the corner of Main Street.",
        Sentiment::Neutral,
    ),
    (
        "Water boils at one hundred degrees Celsius.",
        Sentiment::Neutral,
    ),
    (
        "The meeting has been moved to Thursday afternoon.",
        Sentiment::Neutral,
    ),
    ("My brother lives in Chicago.", Sentiment::Neutral),
    (
        "The package weighs about two kilograms.",
        Sentiment::Neutral,
    ),
    ("We usually eat dinner at seven.", Sentiment::Neutral),
    (
        "The library is open from Monday to Saturday.",
        Sentiment::Neutral,
    ),
    ("The bus stop is across the street.", Sentiment::Neutral),
    (
        "She is reading a book about the history of Rome.",
        Sentiment::Neutral,
    ),
    (
        "The form asks for your name and address.",
        Sentiment::Neutral,
    ),
    (
        "The new policy takes effect in January.",
        Sentiment::Neutral,
    ),
    (
        "There are four chairs around the kitchen table.",
        Sentiment::Neutral,
    ),
    ("He drives a blue car to work.", Sentiment::Neutral),
    (
        "The file is stored in the shared folder.",
        Sentiment::Neutral,
    ),
    (
        "Our flight lands at the airport at noon.",
        Sentiment::Neutral,
    ),
    (
        "The museum has a collection of old maps.",
        Sentiment::Neutral,
    ),
    (
        "The recipe calls for two eggs and a cup of flour.",
        Sentiment::Neutral,
    ),
];

#[test]
fn labels_at_least_85_percent_right() {
    let analyzer = analyzer();
    assert!(LABELLED.len() >= 60);
    let mut right = 0;
    for (text, want) in LABELLED {
        let doc = analyzer.analyze(text);
        if doc.sentiment == *want {
            right += 1;
        } else {
            println!(
                "wrong: {text:?} → {} (compound {:.3}), expected {want}",
                doc.sentiment, doc.compound
            );
        }
    }
    let ratio = right as f64 / LABELLED.len() as f64;
    println!(
        "sentiment: {right}/{} right ({:.1} %)",
        LABELLED.len(),
        ratio * 100.0
    );
    assert!(ratio >= 0.85, "only {:.1} % right", ratio * 100.0);
}

#[test]
fn pipeline_reports_azure_fields() {
    let pipeline = SentimentPipeline::new(std::sync::Arc::new(analyzer()));
    let mut runner = pipeline.runner().unwrap();
    let text = "The food was excellent. The waiter was rude and slow!\nWe left at ten.";
    let out = runner.run(&[text, "I love it."]).unwrap();
    let labels: Vec<&[u8]> = BytesElements::new(&out[0].data).collect();
    assert_eq!(labels, vec![b"mixed".as_slice(), b"positive"]);
    let scores: Vec<f32> = out[1]
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(scores.len(), 6);
    for row in scores.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    assert!(scores[3] > scores[4] && scores[3] > scores[5]);
    let sentences: Vec<&[u8]> = BytesElements::new(&out[2].data).collect();
    let json: serde_json::Value = serde_json::from_slice(sentences[0]).unwrap();
    let items = json.as_array().unwrap();
    let got: Vec<(&str, u64, u64, &str)> = items
        .iter()
        .map(|s| {
            (
                s["text"].as_str().unwrap(),
                s["offset"].as_u64().unwrap(),
                s["length"].as_u64().unwrap(),
                s["sentiment"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("The food was excellent.", 0, 23, "positive"),
            ("The waiter was rude and slow!", 24, 29, "negative"),
            ("We left at ten.", 54, 15, "neutral"),
        ]
    );
    for s in items {
        let c = &s["confidenceScores"];
        let sum = c["positive"].as_f64().unwrap()
            + c["neutral"].as_f64().unwrap()
            + c["negative"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-5, "{s}");
    }
}

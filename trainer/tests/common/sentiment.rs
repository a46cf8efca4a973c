//! A small labelled sentiment set (positive, negative, neutral), shared by the trainer's
//! text-classifier test and the end-to-end sentiment-binding test.

#![allow(dead_code)]

/// `(text, label)` pairs: 42 of each label.
pub const SENTENCES: &[(&str, &str)] = &[
    (
        "I absolutely loved this movie, it was wonderful.",
        "positive",
    ),
    (
        "The food was delicious and the staff were lovely.",
        "positive",
    ),
    (
        "What a fantastic experience, I would happily do it again.",
        "positive",
    ),
    ("This is the best phone I have ever owned.", "positive"),
    (
        "The hotel room was spotless and the view was amazing.",
        "positive",
    ),
    (
        "I am so happy with my purchase, it works perfectly.",
        "positive",
    ),
    (
        "Great service, friendly people and fair prices.",
        "positive",
    ),
    (
        "The concert was brilliant and the crowd was joyful.",
        "positive",
    ),
    (
        "She gave a truly inspiring and delightful speech.",
        "positive",
    ),
    ("Our holiday was perfect from start to finish.", "positive"),
    (
        "The new update is excellent and makes everything faster.",
        "positive",
    ),
    ("I really enjoyed the book, a beautiful story.", "positive"),
    (
        "The support team was incredibly helpful and kind.",
        "positive",
    ),
    ("This restaurant is superb, highly recommended.", "positive"),
    ("The kids had a wonderful time at the park.", "positive"),
    (
        "Everything arrived early and in perfect condition.",
        "positive",
    ),
    ("I love how comfortable these shoes are.", "positive"),
    (
        "The coffee here is amazing and the cakes are heavenly.",
        "positive",
    ),
    ("A delightful film with a charming cast.", "positive"),
    ("The course was excellent and I learned a lot.", "positive"),
    (
        "Thank you, this was a great help and I am grateful.",
        "positive",
    ),
    (
        "The garden looks gorgeous this spring, I adore it.",
        "positive",
    ),
    ("Our new neighbours are friendly and generous.", "positive"),
    (
        "The game was thrilling and our team played brilliantly.",
        "positive",
    ),
    (
        "I am thrilled with the results, fantastic work.",
        "positive",
    ),
    (
        "The app is intuitive, fast and a pleasure to use.",
        "positive",
    ),
    (
        "Dinner was lovely and the wine was outstanding.",
        "positive",
    ),
    (
        "The teacher was patient, encouraging and wonderful.",
        "positive",
    ),
    (
        "This camera takes stunning pictures, I love it.",
        "positive",
    ),
    ("The trip was a joy and everyone was smiling.", "positive"),
    ("Best pizza in town, absolutely delicious.", "positive"),
    (
        "The nurses were caring and made me feel welcome.",
        "positive",
    ),
    ("What a pleasant surprise, I am delighted.", "positive"),
    ("The performance was magnificent and moving.", "positive"),
    ("I had a great day and feel very happy.", "positive"),
    (
        "The laptop is excellent value and runs beautifully.",
        "positive",
    ),
    (
        "The service was quick and the waiter was charming.",
        "positive",
    ),
    ("This is a brilliant idea, well done.", "positive"),
    ("The museum was fascinating and wonderful.", "positive"),
    ("I am very pleased with the quality, superb.", "positive"),
    (
        "The beach was beautiful and the weather was perfect.",
        "positive",
    ),
    ("Awesome product, it exceeded my expectations.", "positive"),
    (
        "I hated this movie, it was a complete waste of time.",
        "negative",
    ),
    ("The food was cold, bland and disgusting.", "negative"),
    (
        "What a terrible experience, I will never come back.",
        "negative",
    ),
    ("This is the worst phone I have ever owned.", "negative"),
    ("The hotel room was dirty and smelled awful.", "negative"),
    (
        "I am very disappointed, it broke after one day.",
        "negative",
    ),
    ("Rude staff, slow service and overpriced junk.", "negative"),
    (
        "The concert was awful and the sound was horrible.",
        "negative",
    ),
    ("His speech was boring, arrogant and insulting.", "negative"),
    ("Our holiday was ruined by constant problems.", "negative"),
    (
        "The new update is buggy and makes everything slower.",
        "negative",
    ),
    ("I really disliked the book, a dreadful story.", "negative"),
    ("The support team was useless and unhelpful.", "negative"),
    ("This restaurant is horrible, avoid it.", "negative"),
    ("The kids were miserable and bored at the park.", "negative"),
    ("Everything arrived late and badly damaged.", "negative"),
    (
        "I hate how painful and uncomfortable these shoes are.",
        "negative",
    ),
    (
        "The coffee here is terrible and the cakes are stale.",
        "negative",
    ),
    ("A dreadful film with an annoying cast.", "negative"),
    (
        "The course was a disaster and I learned nothing.",
        "negative",
    ),
    ("This was no help at all and I am furious.", "negative"),
    (
        "The garden looks ugly and dead, it is depressing.",
        "negative",
    ),
    ("Our new neighbours are loud, rude and hostile.", "negative"),
    (
        "The game was painful and our team played horribly.",
        "negative",
    ),
    ("I am upset with the results, awful work.", "negative"),
    (
        "The app is confusing, slow and frustrating to use.",
        "negative",
    ),
    ("Dinner was awful and the wine tasted sour.", "negative"),
    ("The teacher was impatient, mean and unfair.", "negative"),
    (
        "This camera takes blurry pictures, I regret buying it.",
        "negative",
    ),
    (
        "The trip was a nightmare and everyone was angry.",
        "negative",
    ),
    ("Worst pizza in town, absolutely revolting.", "negative"),
    (
        "The staff were careless and made me feel unwelcome.",
        "negative",
    ),
    ("What a nasty surprise, I am appalled.", "negative"),
    ("The performance was pathetic and embarrassing.", "negative"),
    ("I had a horrible day and feel very sad.", "negative"),
    ("The laptop is poor value and keeps crashing.", "negative"),
    ("The service was slow and the waiter was rude.", "negative"),
    ("This is a stupid idea, badly done.", "negative"),
    ("The museum was dull and a total letdown.", "negative"),
    (
        "I am very unhappy with the quality, it is cheap rubbish.",
        "negative",
    ),
    (
        "The beach was filthy and the weather was miserable.",
        "negative",
    ),
    ("Terrible product, it failed completely.", "negative"),
    (
        "The meeting is scheduled for three o'clock on Tuesday.",
        "neutral",
    ),
    ("The train leaves from platform four.", "neutral"),
    (
        "Water boils at one hundred degrees Celsius at sea level.",
        "neutral",
    ),
    ("The report has twelve pages and two appendices.", "neutral"),
    ("The store opens at nine in the morning.", "neutral"),
    ("Paris is the capital of France.", "neutral"),
    ("The package contains a cable and a manual.", "neutral"),
    ("The library is located on the second floor.", "neutral"),
    ("The form must be submitted by Friday.", "neutral"),
    ("The bus route was changed last month.", "neutral"),
    ("The table is made of oak wood.", "neutral"),
    (
        "Please send the invoice to the accounting department.",
        "neutral",
    ),
    ("The museum is closed on Mondays.", "neutral"),
    ("The phone has a six inch screen.", "neutral"),
    ("The course runs for ten weeks.", "neutral"),
    ("The building has four floors and a basement.", "neutral"),
    ("The flight number is printed on the ticket.", "neutral"),
    ("The recipe uses two eggs and a cup of flour.", "neutral"),
    ("The office moved to a new address in March.", "neutral"),
    ("The river flows from the mountains to the sea.", "neutral"),
    (
        "The software version number is listed in the settings.",
        "neutral",
    ),
    ("The committee meets once a month.", "neutral"),
    ("The parcel was delivered on Wednesday.", "neutral"),
    ("The street is one kilometre long.", "neutral"),
    ("The documents are stored in the blue folder.", "neutral"),
    ("The car is parked on the left side of the road.", "neutral"),
    (
        "The survey asks ten questions about travel habits.",
        "neutral",
    ),
    ("The store sells books, pens and paper.", "neutral"),
    (
        "The lecture covers chapter five of the textbook.",
        "neutral",
    ),
    ("The box is forty centimetres wide.", "neutral"),
    (
        "The manual describes how to install the printer.",
        "neutral",
    ),
    ("The city has a population of about two million.", "neutral"),
    ("The next update is planned for the autumn.", "neutral"),
    ("The keys are on the kitchen counter.", "neutral"),
    ("The station is next to the post office.", "neutral"),
    ("The exam takes place in room 204.", "neutral"),
    ("The laptop weighs one and a half kilograms.", "neutral"),
    ("The shop is on the corner of Main Street.", "neutral"),
    ("The contract is valid for two years.", "neutral"),
    ("The cat sleeps in the basket by the window.", "neutral"),
    ("The class starts at eight and ends at ten.", "neutral"),
    ("The printer is connected to the network.", "neutral"),
];

/// The set as JSON lines with `text` and `label`.
pub fn jsonl() -> String {
    SENTENCES
        .iter()
        .map(|(text, label)| serde_json::json!({"text": text, "label": label}).to_string() + "\n")
        .collect()
}

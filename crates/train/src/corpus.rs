//! The built-in corpus: a deterministic generator of simple English children's stories
//! (TinyStories-like), and the byte-level tokenizer of the `tiny` preset.
//!
//! Every story follows one arc — opening, setting, want, problem, help, ending, moral — and
//! fills a few templates per step with named characters, places and things drawn from a
//! vocabulary of a few hundred words, so a small model can visibly learn words, sentences and
//! story shape in minutes. A story is one line of text; stories are separated by
//! [`STORY_SEPARATOR`] (a blank line), and no story contains a blank line.

use crate::rng::Rng;

/// What separates two stories in [`builtin_corpus`]: one blank line.
pub const STORY_SEPARATOR: &str = "\n\n";

/// A character: name, kind and pronouns (subject, object, possessive).
struct Who {
    name: &'static str,
    kind: &'static str,
    he: &'static str,
    him: &'static str,
    his: &'static str,
}

const GIRLS: &[&str] = &[
    "Lily", "Mia", "Sue", "Anna", "Lucy", "Emma", "Sara", "Zoe", "Ella", "Amy", "Kim", "Rose",
    "Molly", "Daisy", "Jane", "Ruby",
];
const BOYS: &[&str] = &[
    "Tom", "Ben", "Max", "Sam", "Tim", "Leo", "Jack", "Bob", "Joe", "Finn", "Jake", "Dan", "Ned",
    "Ollie", "Toby", "Paul",
];
const ANIMALS: &[&str] = &[
    "cat", "dog", "bunny", "bear", "bird", "frog", "duck", "mouse", "fox", "pig", "puppy",
    "kitten", "owl", "squirrel", "turtle", "lamb",
];
const ADJECTIVES: &[&str] = &[
    "little", "happy", "kind", "curious", "brave", "shy", "small", "funny", "friendly", "clever",
    "sleepy", "silly", "gentle", "busy", "cheerful", "tiny",
];
const PLACES: &[&str] = &[
    "park",
    "garden",
    "beach",
    "farm",
    "lake",
    "yard",
    "field",
    "meadow",
    "playground",
    "river",
    "pond",
    "zoo",
];
const TIMES: &[&str] = &[
    "One day",
    "One sunny day",
    "One morning",
    "After lunch",
    "One warm summer day",
    "One cold winter day",
    "One windy day",
    "On a bright spring morning",
];
const COLORS: &[&str] = &[
    "red", "blue", "green", "yellow", "big", "shiny", "pink", "orange", "purple", "soft", "new",
    "little",
];
const FRIENDS_OF: &[&str] = &["mom", "dad", "grandma", "grandpa", "sister", "brother"];
const LIKES: &[&str] = &[
    "play outside",
    "sing songs",
    "draw pictures",
    "run and jump",
    "look at the clouds",
    "read books",
    "dance in the sun",
    "pick flowers",
    "play with {his} friends",
    "help {his} mom",
    "splash in puddles",
    "eat apples",
];
const OPENINGS: &[&str] = &[
    "Once upon a time, there was a {adj} {kind} named {N}. {He} liked to {like}.",
    "Once upon a time, in a small town, there lived a {adj} {kind} named {N}. {N} loved to {like}.",
    "There was once a {adj} {kind} called {N}. Every day, {N} wanted to {like}.",
    "{N} was a {adj} {kind}. {He} lived in a little house with {his} {rel}, and {he} loved to {like}.",
];
const SETTINGS: &[&str] = &[
    "{time}, {N} went to the {place} with {his} {rel}.",
    "{time}, {N} and {his} {rel} walked to the {place}.",
    "{time}, {N} went out to play at the {place}.",
    "{time}, {N} put on {his} shoes and ran to the {place}.",
];

/// One kind of story: the things it is about and a few templates for each step of its arc.
struct Plot {
    /// Whether the things take a color ("a red ball"); fears, buildings and food do not.
    colored: bool,
    things: &'static [&'static str],
    want: &'static [&'static str],
    problem: &'static [&'static str],
    help: &'static [&'static str],
    ending: &'static [&'static str],
    moral: &'static [&'static str],
}

const PLOTS: &[Plot] = &[
    Plot {
        colored: true,
        things: &["ball", "kite", "balloon", "hat", "frisbee", "scarf"],
        want: &[
            "There {he} saw {a_obj}. {N} wanted to play with it.",
            "{N} had {a_obj}. {He} played with it all morning.",
        ],
        problem: &[
            "Then the wind blew the {thing} up into a tall tree. {N} tried to reach it, but {he} was too small. {He} felt sad.",
            "But the {thing} went high up and got stuck in a tree. {N} jumped and jumped, but {he} could not get it. {He} started to cry.",
        ],
        help: &[
            "Just then, a {fadj} {fkind} named {F} came by. \"Why are you sad?\" asked {F}. \"My {thing} is stuck in the tree,\" said {N}. {F} climbed up the tree and pushed the {thing} down.",
            "A {fadj} {fkind} named {F} saw {N}. \"I can help you!\" said {F}. {F} found a long stick and knocked the {thing} out of the tree.",
        ],
        ending: &[
            "{N} was very happy. \"Thank you, {F}!\" {he} said. They played with the {thing} together until the sun went down.",
            "{N} smiled and hugged {F}. The two friends played with the {thing} all day.",
        ],
        moral: &[
            "{N} learned that friends help each other.",
            "From that day on, {N} and {F} were best friends.",
        ],
    },
    Plot {
        colored: true,
        things: &["teddy bear", "toy car", "doll", "book", "shell", "drum", "toy boat"],
        want: &[
            "{N} took {his} {obj} with {him}. It was {his} favorite toy.",
            "{N} brought {a_obj}. {He} loved it very much.",
        ],
        problem: &[
            "But when it was time to go home, {N} could not find {his} {thing}. {He} looked and looked, but it was gone. {N} was very sad.",
            "After a while, {N} looked around and saw that {his} {thing} was lost. {He} felt a big tear on {his} cheek.",
        ],
        help: &[
            "{F}, a {fadj} {fkind}, wanted to help. \"Let us look together,\" said {F}. They looked under the bench and behind the bushes. At last, {F} found the {thing} under a big leaf.",
            "{N} asked {his} friend {F} the {fkind} for help. {F} had a good nose and a good idea. {F} sniffed and sniffed, and soon {fhe} found the {thing} next to a rock.",
        ],
        ending: &[
            "{N} hugged {his} {thing}. \"Thank you, {F}!\" {he} said with a big smile.",
            "{N} jumped up and down with joy. {He} held the {thing} tight all the way home.",
        ],
        moral: &[
            "{N} learned to take good care of {his} things.",
            "{N} learned that it is good to ask for help.",
        ],
    },
    Plot {
        colored: false,
        things: &["ball", "swing", "red wagon", "toy truck", "jump rope", "big box of crayons"],
        want: &[
            "{N} saw {a_obj}. {He} wanted it all for {him}self. {F} the {fkind} wanted to play with it too.",
            "There was only one {obj}. {N} and {F} the {fkind} both wanted it.",
        ],
        problem: &[
            "\"It is mine!\" said {N}. \"No, it is mine!\" said {F}. They pulled and pulled, and both of them felt angry.",
            "{N} grabbed the {thing} and would not share. {F} was sad and began to cry.",
        ],
        help: &[
            "{N}'s {rel} came over. \"If you share, you can both have fun,\" {rel_he} said. {N} thought about it and gave {F} a turn.",
            "Then {N} saw how sad {F} was. {He} felt bad. \"I am sorry,\" said {N}. \"We can take turns.\"",
        ],
        ending: &[
            "{N} and {F} took turns with the {thing}. They laughed and had lots of fun together.",
            "They played with the {thing} together, and it was more fun than playing alone.",
        ],
        moral: &[
            "{N} learned that sharing makes everyone happy.",
            "From that day on, {N} always shared with {his} friends.",
        ],
    },
    Plot {
        colored: false,
        things: &["dark", "big waves", "tall slide", "loud thunder", "deep water", "big dog"],
        want: &[
            "{N} wanted to have fun, but {he} was afraid of the {obj}.",
            "{N} saw the {obj} and stopped. {He} did not want to go near it.",
        ],
        problem: &[
            "{His} legs shook and {he} hid behind a tree. \"I am scared,\" {he} said in a small voice.",
            "{N} felt very scared. {He} sat down and closed {his} eyes.",
        ],
        help: &[
            "{F}, a {fadj} {fkind}, sat next to {him}. \"It is okay to be scared,\" said {F}. \"I will stay with you.\" {F} held {his} hand.",
            "{N}'s {rel} came and gave {him} a hug. \"You are braver than you think,\" {rel_he} said. \"Let us try together.\"",
        ],
        ending: &[
            "{N} took a deep breath and tried. It was not so scary after all! {He} laughed and wanted to do it again.",
            "Step by step, {N} was brave. Soon {he} was not afraid anymore, and {he} had a great day.",
        ],
        moral: &[
            "{N} learned that being brave is easier with a friend.",
            "{N} learned that it is okay to be scared, and it is good to try.",
        ],
    },
    Plot {
        colored: false,
        things: &["sandcastle", "tower of blocks", "snowman", "little house of sticks", "bird house"],
        want: &[
            "{N} wanted to build a {obj}. {He} worked hard all morning.",
            "{N} had a plan. {He} wanted to make the biggest {obj} in the world.",
        ],
        problem: &[
            "But then a big wind came, and the {thing} fell down. {N} was very sad.",
            "Just when it was almost done, {N} slipped, and the {thing} fell down. {He} wanted to give up.",
        ],
        help: &[
            "{F} the {fkind} saw what happened. \"Do not give up,\" said {F}. \"I will help you build it again.\" They worked together, slow and careful.",
            "{N}'s {rel} said, \"Let us try again. This time we will make it strong.\" They built it again, side by side.",
        ],
        ending: &[
            "The new {thing} was even bigger than before. {N} clapped {his} hands and smiled.",
            "When they were done, the {thing} stood tall and strong. Everyone came to look at it.",
        ],
        moral: &[
            "{N} learned that it is good to keep trying.",
            "{N} learned that hard work and a little help can fix anything.",
        ],
    },
    Plot {
        colored: false,
        things: &["cake", "pie", "plate of cookies", "picnic lunch", "pot of soup"],
        want: &[
            "{N} wanted to make a {obj} for {his} {rel}. {He} got a bowl and a big spoon.",
            "It was a special day, and {N} wanted to make a {obj}.",
        ],
        problem: &[
            "But {N} was in a hurry, and {he} spilled the flour on the floor. What a mess! {He} did not know what to do.",
            "Oops! {N} dropped the eggs, and they broke. {He} felt sad and a little silly.",
        ],
        help: &[
            "{F} the {fkind} came in. \"Do not worry,\" said {F}. \"We can clean it up and start again.\" They cleaned the floor and mixed everything again, slowly this time.",
            "{N}'s {rel} smiled. \"Everyone makes mistakes,\" {rel_he} said. Together they made the {thing} again.",
        ],
        ending: &[
            "The {thing} was warm and good. Everyone ate it and said it was the best {thing} ever.",
            "Soon the {thing} was ready. {N} shared it with {F} and {his} {rel}, and they all smiled.",
        ],
        moral: &[
            "{N} learned to be patient and go slowly.",
            "{N} learned that mistakes are okay when you try again.",
        ],
    },
    Plot {
        colored: false,
        things: &["seed", "bean", "pumpkin seed", "flower seed", "apple seed"],
        want: &[
            "{N} found a tiny {obj} in {his} pocket. {He} wanted to grow a big plant.",
            "{N}'s {rel} gave {him} a little {obj}. \"Plant it, and it will grow,\" {rel_he} said.",
        ],
        problem: &[
            "{N} planted the {thing} and gave it water. Every morning {he} looked, but nothing grew. \"It will never grow,\" {he} said sadly.",
            "{N} waited one day, then two days, but the {thing} did not grow. {He} wanted to dig it up.",
        ],
        help: &[
            "{F} the {fkind} said, \"Plants need time. Give it sun and water, and wait.\" So {N} gave it water every day and sang to it.",
            "{N}'s {rel} smiled. \"Good things take time,\" {rel_he} said. {N} waited and took care of the {thing} every day.",
        ],
        ending: &[
            "One morning, {N} saw a little green leaf! Soon there was a tall plant with a big flower. {N} laughed and danced around it.",
            "After many days, a tiny green plant came up. It grew and grew, and {N} was very proud.",
        ],
        moral: &[
            "{N} learned that good things take time.",
            "{N} learned to be patient and to take care of things.",
        ],
    },
    Plot {
        colored: false,
        things: &["baby bird", "little kitten", "small puppy", "baby duck", "tiny turtle"],
        want: &[
            "{N} heard a small, sad sound. Under a bush, {he} found a {obj}.",
            "Near a big rock, {N} saw a {obj}. It was all alone.",
        ],
        problem: &[
            "The {thing} was lost and could not find its mom. It was cold and scared, and {N} did not know what to do.",
            "The {thing} was shaking. It wanted to go home, but home was far away.",
        ],
        help: &[
            "{N} asked {F} the {fkind} for help. They gave the {thing} some water and looked for its home together.",
            "{N} held the {thing} gently and carried it to {his} {rel}. \"We will help it find its family,\" said {N}'s {rel}.",
        ],
        ending: &[
            "At last they found the {thing}'s mom. She was so happy, and the {thing} snuggled close to her.",
            "Soon the {thing}'s family came. They were happy to be together again, and {N} smiled a big smile.",
        ],
        moral: &[
            "{N} learned that it is good to be kind to animals, big and small.",
            "{N} learned that a kind heart can help others.",
        ],
    },
];

/// The words one story is built from.
struct Cast {
    hero: Who,
    friend: Who,
    adj: &'static str,
    fadj: &'static str,
    place: &'static str,
    time: &'static str,
    rel: &'static str,
    like: &'static str,
    color: &'static str,
    thing: &'static str,
}

/// A random character with consistent pronouns; `animal` makes it an animal.
fn who(rng: &mut Rng, animal: bool, not_named: &str) -> Who {
    let girl = rng.below(2) == 0;
    let names = if girl { GIRLS } else { BOYS };
    let mut name = rng.pick(names);
    while name == not_named {
        name = rng.pick(names);
    }
    let kind = if animal {
        rng.pick(ANIMALS)
    } else if girl {
        "girl"
    } else {
        "boy"
    };
    let (he, him, his) = if girl {
        ("she", "her", "her")
    } else {
        ("he", "him", "his")
    };
    Who {
        name,
        kind,
        he,
        him,
        his,
    }
}

/// Capitalizes the first letter of an ASCII word.
fn capital(word: &str, out: &mut String) {
    let mut chars = word.chars();
    if let Some(c) = chars.next() {
        out.push(c.to_ascii_uppercase());
        out.push_str(chars.as_str());
    }
}

/// The pronoun a relative goes by.
fn relative_pronoun(rel: &str) -> &'static str {
    match rel {
        "mom" | "grandma" | "sister" => "she",
        _ => "he",
    }
}

/// Appends the value of one `{key}` placeholder.
fn fill(key: &str, c: &Cast, out: &mut String) {
    let (h, f) = (&c.hero, &c.friend);
    let plain = match key {
        "N" => h.name,
        "F" => f.name,
        "kind" => h.kind,
        "fkind" => f.kind,
        "adj" => c.adj,
        "fadj" => c.fadj,
        "he" => h.he,
        "him" => h.him,
        "his" => h.his,
        "fhe" => f.he,
        "place" => c.place,
        "time" => c.time,
        "rel" => c.rel,
        "rel_he" => relative_pronoun(c.rel),
        "thing" => c.thing,
        "He" => return capital(h.he, out),
        "His" => return capital(h.his, out),
        "like" => return render(c.like, c, out),
        "obj" | "a_obj" => {
            let first = if c.color.is_empty() { c.thing } else { c.color };
            if key == "a_obj" {
                let vowel = first.starts_with(['a', 'e', 'i', 'o', 'u']);
                out.push_str(if vowel { "an " } else { "a " });
            }
            if !c.color.is_empty() {
                out.push_str(c.color);
                out.push(' ');
            }
            c.thing
        }
        _ => key,
    };
    out.push_str(plain);
}

/// Appends `template` with every `{key}` replaced from the cast.
fn render(template: &str, c: &Cast, out: &mut String) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        fill(&after[..close], c, out);
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
}

/// Appends one story (a single line, no trailing newline).
fn story(rng: &mut Rng, out: &mut String) {
    let plot = &PLOTS[rng.below(PLOTS.len() as u64) as usize];
    let animal = rng.below(3) == 0;
    let hero = who(rng, animal, "");
    let friend = who(rng, true, hero.name);
    let thing = rng.pick(plot.things);
    let cast = Cast {
        adj: rng.pick(ADJECTIVES),
        fadj: rng.pick(ADJECTIVES),
        place: rng.pick(PLACES),
        time: rng.pick(TIMES),
        rel: rng.pick(FRIENDS_OF),
        like: rng.pick(LIKES),
        color: if plot.colored { rng.pick(COLORS) } else { "" },
        thing,
        hero,
        friend,
    };
    let steps: [&[&str]; 7] = [
        OPENINGS,
        SETTINGS,
        plot.want,
        plot.problem,
        plot.help,
        plot.ending,
        plot.moral,
    ];
    for (i, templates) in steps.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let template = rng.pick(templates);
        render(template, &cast, out);
    }
}

/// About `bytes` of generated stories from `seed`: whole stories separated by
/// [`STORY_SEPARATOR`], stopping at the first story that reaches `bytes` (at least one story).
pub fn builtin_corpus(bytes: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(bytes + 2048);
    loop {
        story(&mut rng, &mut out);
        if out.len() >= bytes {
            return out;
        }
        out.push_str(STORY_SEPARATOR);
    }
}

/// The byte-level tokenizer of the `tiny` preset: ids 0..=255 are the bytes of UTF-8 text,
/// 256 is end-of-text, and 257..=263 are reserved padding so the vocabulary is a multiple of 8.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// The id that ends a story.
    pub const END_OF_TEXT: u32 = 256;
    /// The vocabulary size, padded to a multiple of 8 (ids 257..=263 are never produced).
    pub const VOCAB_SIZE: usize = 264;

    /// The ids of the bytes of `text`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    /// The ids of a corpus: each story's bytes followed by [`Self::END_OF_TEXT`], splitting on
    /// [`STORY_SEPARATOR`].
    pub fn encode_corpus(&self, corpus: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(corpus.len() + corpus.len() / 512);
        for story in corpus.split(STORY_SEPARATOR).filter(|s| !s.is_empty()) {
            ids.extend(story.bytes().map(u32::from));
            ids.push(Self::END_OF_TEXT);
        }
        ids
    }

    /// The text of `ids`: end-of-text becomes [`STORY_SEPARATOR`], reserved ids are dropped and
    /// invalid UTF-8 is replaced with U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len());
        for &id in ids {
            match id {
                0..=255 => bytes.push(id as u8),
                Self::END_OF_TEXT => bytes.extend_from_slice(STORY_SEPARATOR.as_bytes()),
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

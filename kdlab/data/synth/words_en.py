"""English word lists for the mini-en grammar, grouped by domain.

Notation (parsed by :mod:`kdlab.data.synth.grammar_en`):
  nouns   ``city`` (regular plural), ``child:children`` (irregular plural), ``rice*`` (uncountable)
  verbs   ``cook`` (regular), ``chop:chopped:chopping`` (past, -ing), ``eat:ate:eating:eaten`` (+ participle);
          a missing form follows the spelling rules, ``-`` keeps the rule.
  agents are human nouns that can be subjects of every verb in the domain.
"""

from __future__ import annotations

DOMAINS: dict[str, dict[str, str]] = {
    "weather": dict(
        agents="forecaster meteorologist farmer pilot sailor fisherman:fishermen gardener hiker climber "
        "reporter scientist",
        things="cloud storm umbrella forecast thermometer raincoat jacket satellite map warning report "
        "temperature breeze rainbow sunrise sunset snowflake hailstorm thunderstorm shower "
        "snow* rain* fog* ice* frost* sunshine* humidity* pressure* weather*",
        verbs_t="predict measure watch record check study track announce expect observe "
        "forget:forgot:-:forgotten "
        "bring:brought carry:carried report",
        verbs_i="arrive wait:waited:waiting shiver:shivered:shivering complain travel:traveled:traveling "
        "stay:stayed:staying hurry:hurried",
        adjs="cold warm sunny cloudy windy rainy foggy humid dry wet freezing mild stormy chilly bright "
        "dark heavy light gentle strong",
        places="coast valley mountain island harbor village north south east west desert lake",
    ),
    "travel": dict(
        agents="traveler tourist passenger driver guide conductor captain stranger visitor student "
        "family:families",
        things="ticket train bus plane suitcase passport hotel room map taxi bicycle boat ferry museum "
        "castle bridge station airport platform journey trip holiday:holidays postcard camera souvenir "
        "luggage* guidebook highway tunnel",
        verbs_t="book visit miss:missed:missing catch:caught:catching pack:packed:packing reserve "
        "cancel:canceled:canceling find:found photograph explore leave:left take:took:taking:taken "
        "rent follow show:showed:-:shown pay:paid",
        verbs_i="arrive depart wander:wandered:wandering sleep:slept return drive:drove:driving:driven "
        "fly:flew:flying:flown walk",
        adjs="crowded quiet expensive cheap comfortable delayed famous ancient modern beautiful narrow "
        "wide busy empty late early foreign lovely",
        places="station airport city square harbor border market cathedral beach hotel village capital",
    ),
    "cooking": dict(
        agents="chef cook baker waiter waitress:waitresses grandmother grandfather child:children neighbor "
        "friend guest",
        things="onion potato:potatoes tomato:tomatoes carrot pepper garlic* butter* flour* sugar* salt* "
        "rice* soup* bread* cheese* pasta* sauce cake pie salad sandwich:sandwiches egg apple lemon "
        "orange banana spoon knife:knives pan pot oven plate bowl cup kettle recipe dish:dishes meal "
        "chicken* fish* milk* honey* cream* cookie",
        verbs_t="chop:chopped:chopping slice:sliced:slicing boil fry:fried:frying bake:baked:baking "
        "stir:stirred:stirring mix taste:tasted:tasting cook prepare:prepared:preparing serve:served:serving "
        "wash peel heat eat:ate:eating:eaten buy:bought cut:cut:cutting make:made:making "
        "burn:burned:burning pour",
        verbs_i="smile:smiled:smiling laugh wait:waited:waiting sit:sat:sitting eat:ate:eating:eaten "
        "cook rest",
        adjs="delicious salty sweet sour bitter spicy fresh hot cold crispy soft tender raw tasty "
        "warm rich simple",
        places="kitchen restaurant bakery garden market cafe dining_room canteen",
    ),
    "sports": dict(
        agents="player coach referee runner swimmer goalkeeper captain fan athlete champion team "
        "striker",
        things="ball match:matches game goal race medal trophy:trophies score point stadium net "
        "racket bat helmet jersey season tournament final league record whistle glove",
        verbs_t="win:won:winning lose:lost:losing kick throw:threw:-:thrown catch:caught:catching "
        "hit:hit:hitting score:scored:scoring watch play:played:playing defend train coach "
        "miss:missed:missing break:broke:-:broken",
        verbs_i="run:ran:running:run swim:swam:swimming:swum jump climb train "
        "celebrate:celebrated:celebrating "
        "cheer shout",
        adjs="fast slow strong tired brave young talented famous proud nervous fit professional "
        "excellent terrible exciting loud",
        places="stadium field court pool gym track park arena club",
    ),
    "science": dict(
        agents="scientist researcher professor student engineer doctor chemist physicist "
        "biologist astronomer nurse inventor",
        things="experiment theory:theories planet star galaxy:galaxies atom molecule cell virus:viruses "
        "microscope telescope sample laboratory:laboratories battery:batteries engine robot computer "
        "signal rocket orbit gene protein formula data* energy* light* gravity* oxygen* water* "
        "electricity* medicine* result paper",
        verbs_t="discover:discovered:discovering measure:measured:measuring test analyze:analyzed:analyzing "
        "publish:published build:built design observe:observed:observing repeat explain "
        "compare:compared:comparing invent study:studied:studying describe:described:describing "
        "examine:examined:examining",
        verbs_i="think:thought argue:argued:arguing agree:agreed:agreeing succeed fail work",
        adjs="careful accurate strange complex tiny huge bright distant invisible important new "
        "surprising clear simple electric chemical",
        places="laboratory:laboratories university:universities hospital observatory:observatories "
        "ocean forest factory:factories",
    ),
    "finance": dict(
        agents="banker investor customer manager accountant clerk owner worker director seller buyer "
        "shopkeeper",
        things="bank account loan price:prices bill coin wallet salary:salaries budget tax:taxes "
        "market share contract receipt invoice payment check profit cost debt interest* money* "
        "cash* credit* insurance* company:companies store shop office report",
        verbs_t="save:saved:saving spend:spent borrow lend:lent invest count sign sell:sold "
        "buy:bought pay:paid check open:opened:opening close:closed:closing raise:raised:raising "
        "lower:lowered:lowering owe:owed:owing",
        verbs_i="grow:grew:-:grown fall:fell:-:fallen rise:rose:rising:risen struggle:struggled:struggling "
        "succeed retire:retired:retiring negotiate:negotiated:negotiating",
        adjs="rich poor expensive cheap careful wealthy honest private public monthly annual "
        "small large risky safe stable",
        places="bank office market shop city branch mall",
    ),
    "daily": dict(
        agents="mother father sister brother neighbor friend teacher child:children baby:babies "
        "grandmother uncle aunt cousin boy girl woman:women man:men person:people",
        things="door window chair table bed book letter phone key lamp clock newspaper picture "
        "shirt shoe sock dress:dresses coat bag gift flower dog cat bird house:houses car "
        "garden letter homework* furniture* music* coffee* tea* television radio "
        "blanket pillow towel toothbrush:toothbrushes mirror",
        verbs_t="open:opened:opening close:closed:closing clean read:read wash:washed:washing find:found "
        "lose:lost:losing fix:fixed:fixing paint:painted carry:carried:carrying call "
        "write:wrote:writing:written "
        "send:sent feed:fed borrow forget:forgot:forgetting:forgotten move:moved:moving "
        "hide:hid:hiding:hidden "
        "like:liked:liking love:loved:loving need want",
        verbs_i="sleep:slept wake:woke:waking:woken sing:sang:singing:sung dance:danced:dancing cry:cried "
        "laugh listen relax walk talk stay",
        adjs="happy sad tired busy quiet noisy clean dirty old new small big warm cozy angry kind "
        "friendly lazy funny",
        places="house:houses room park school library:libraries street garden kitchen office church yard",
    ),
}

PEOPLE = (
    "anna david maria james sarah michael emma daniel sophia thomas olivia peter lucy robert "
    "helen george alice william laura henry kate oliver grace jack emily charles rose samuel "
    "martha paul jane edward clara victor nina"
).split()

CITIES = (
    "paris london berlin madrid rome vienna boston chicago denver seattle toronto sydney tokyo "
    "cairo lisbon dublin prague oslo moscow delhi"
).split()

WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = "january february march april may june july august september october november december".split()

TIMES_PAST = (
    "yesterday|last night|last week|last month|this morning|two days ago|on the weekend|after lunch|"
    "before dinner|at noon|at midnight|earlier today"
).split("|")
TIMES_FUTURE = (
    "tomorrow|tonight|next week|next month|this evening|soon|later|on the weekend|after lunch|"
    "before dinner|at noon|in the morning"
).split("|")
TIMES = TIMES_PAST + TIMES_FUTURE

ADVERBS = (
    "quickly slowly carefully quietly happily suddenly finally often always never usually rarely"
).split()
INTENSIFIERS = "very quite rather really extremely too so".split()
UNITS = {  # (singular, plural) measurement units
    "weather": ("degree", "degrees"),
    "travel": ("kilometer", "kilometers"),
    "cooking": ("gram", "grams"),
    "sports": ("minute", "minutes"),
    "science": ("meter", "meters"),
    "finance": ("dollar", "dollars"),
    "daily": ("hour", "hours"),
}

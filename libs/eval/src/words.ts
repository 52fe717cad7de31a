/**
 * Word lists for keys ("adjective-noun", as RULER builds from wonderwords' lists) and for the common-words task.
 * wonderwords is not available offline, so these are our own lists of everyday English words; the common-words
 * vocabulary is widened with the distinct words of the essay text (see haystack.ts) so long lists do not run out.
 */
export const ADJECTIVES: readonly string[] = words(`
  able absent abundant acidic active adorable afraid aged agile alert alive amber ample ancient angry annual anxious
  arctic aromatic ashamed awake awful bitter blank bland bold bored brave breezy brief bright brisk broad broken
  bumpy busy calm capable careful casual cheap cheerful chilly chubby civil clean clever cloudy clumsy coarse cold
  colossal common complete cool cosmic cozy crazy creamy crisp crooked crowded cruel curious curly cute damp dark
  dazzling dear decent deep dense devoted direct dizzy dry dull dusty eager early earnest easy elastic elderly
  electric elegant empty endless equal exact excited faint fair faithful famous fancy far fast fearless feeble
  fierce filthy fine firm flat fluffy foggy fond formal fragile frank free fresh friendly frozen funny fuzzy gentle
  giant gifted glad gloomy glossy golden gorgeous graceful grand grateful greasy great greedy grumpy guilty
  handsome happy hard harsh hasty healthy heavy helpful hidden hollow honest hopeful huge humble hungry icy idle
  immense innocent jolly joyful juicy keen kind large late lazy lean little lively lonely long loose loud lovely
  loyal lucky lumpy mad magic major mellow merry mighty mild minor misty modern modest moist narrow nasty neat
  nervous new nice noble noisy normal numb odd old open orange ornate pale patient plain pleasant plump polite
  poor precious pretty proud purple quick quiet rapid rare raw ready real rich rigid ripe rough round royal rude
  rusty sad safe salty scarce secret shaggy shallow sharp shiny short shy silent silky silly simple sleepy slim
  slow small smooth soft solid sour spicy splendid square stale steady steep sticky stiff strange strict strong
  sturdy subtle sudden sunny super sweet swift tall tame tart tender tense thick thin thirsty tidy tight tiny
  tired tough tricky true twin ugly unique upbeat urban useful vague vast velvet violet vivid warm wary weak
  wealthy weary wet whole wide wild windy wise witty wooden worried young zany zealous
`);

export const NOUNS: readonly string[] = words(`
  account acorn actor airport alarm album anchor angle animal ankle answer apple apron arch arena armchair army
  arrow artist attic autumn avenue baby bacon badge bag bakery balcony ball balloon banana band bank barn basket
  bath beach beam bean bear beard bed bee bell belt bench berry bicycle bird biscuit blanket block boat body bone
  book boot bottle bowl box branch bread brick bridge brother brush bubble bucket budget bulb bus butter button
  cabin cable cake camel camera camp candle canoe canvas cap captain car card carpet carrot castle cat cave
  ceiling cellar chain chair chalk channel cheese cherry chest chicken chimney church circle city clock cloud
  coast coat coffee coin comet copper corner cotton cousin cow crab crane crayon cricket crown cup curtain
  cushion daisy dancer desert desk diamond dinner doctor dog doll dolphin door dragon drawer dream drum duck
  eagle ear earth egg elbow engine envelope eraser face factory falcon farm feather fence field finger fire fish
  flag flame flower flute fog folder forest fork fountain fox frog garden gate ghost giraffe glass glove goat
  grape grass guitar hammer hand harbor hat hawk heart helmet hill honey horse hospital hotel house island
  jacket jar jelly jewel journey kettle key kitchen kite knife ladder lake lamp lantern leaf lemon letter
  library lily lion lizard lobster lock magnet mango map marble market meadow melon mirror monkey moon mountain
  mouse museum needle nest night ocean office onion orange orchard otter owl paddle page palace pancake panda
  paper parrot pasta peach pear pebble pencil pepper piano pickle pillow pilot pine pizza planet plate pocket
  pond pony potato pumpkin puppy puzzle queen quilt rabbit radio rainbow raven ribbon river road robot rocket
  roof rose ruler saddle sail salad sandal scarf school scissors seal shadow sheep shell ship shoe shovel
  silver sink sister skate sky slipper snail snake soap sock sofa spider spoon squirrel stage star statue stone
  storm stove street sugar suitcase sun swan sweater table tailor teacher teapot temple tent thimble thunder
  ticket tiger toast tomato tooth torch tower town toy tractor train tree truck trumpet tulip tunnel turtle
  umbrella valley vase violin volcano wagon wallet walrus wand wave whale wheel whistle window wizard wolf
  yacht yard zebra
`);

export const VERBS: readonly string[] = words(`
  accept add admire allow answer appear argue arrive ask bake balance bathe behave believe belong blink boil
  borrow bounce breathe build bury calculate call carry catch change charge chase cheer chew clap clean climb
  collect compare complain connect consider cook copy count cover crawl cross cry dance decide deliver describe
  destroy dig discover divide drag draw dream dress drink drive drop dust earn eat enjoy enter escape explain
  explore fail fetch fill find fix float fly fold follow forget gather gaze glow grab greet grow guard guess
  hammer handle hang happen harvest help hide hop hunt hurry imagine improve invent invite jog join juggle jump
  kick kneel knit knock label laugh launch learn lift listen live look love marry measure melt mend mix move
  notice obey offer open order paint pause peel pick plan plant play polish pour praise pray press print promise
  pull punch push race rain reach read relax remember repair repeat rescue rest return ride ring rinse roar roll
  rub run rush sail scatter scream search settle sew shake share shiver shout sing sit skip sleep slide smell
  smile sneeze snore solve sort speak spell spill spin splash sprout squeeze stamp stare start steer stir
  stretch study swim swing talk taste teach tease thank think throw tickle tie touch trace trade travel trust
  try tug turn twist type unlock use vanish visit wait walk wander want warn wash watch wave weigh whisper
  whistle win wink wish wobble wonder work worry wrap write yawn yell zoom
`);

function words(block: string): string[] {
  return [...new Set(block.split(/\s+/).filter((w) => w.length > 0))].sort();
}

#!/usr/bin/env bash
# Regenerates hallcast's voice clips and chime from Debian's espeak-ng and
# sox. Reproducible: same tools, same clips. Every clip is mono, 16-bit,
# 16 kHz WAV with leading and trailing silence trimmed, so the announcer
# controls all gaps itself.
#
#   apt-get install espeak-ng sox
#   sounds/generate.sh
#
# To use a real announcer's voice instead, record clips with the same file
# names (see README.md here) and point `[server] sounds_dir` at them.
set -euo pipefail
cd "$(dirname "$0")"
RATE=16000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say VOICE NAME TEXT [SPEED]
say() {
  local voice=$1 name=$2 text=$3 speed=${4:-165}
  espeak-ng -v "$voice" -s "$speed" -w "$tmp/$name.raw.wav" "$text"
  # Trim silence at both ends, normalise to -3 dBFS, mono 16 kHz 16-bit.
  sox -D "$tmp/$name.raw.wav" -r $RATE -c 1 -b 16 "$name.wav" \
    silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse gain -n -3
}

# Chinese (Mandarin): digits, number words and phrases.
zh_digits=(零 一 二 三 四 五 六 七 八 九)
for d in 0 1 2 3 4 5 6 7 8 9; do say cmn "zh-$d" "${zh_digits[$d]}" 175; done
say cmn zh-10 "十" 175
say cmn zh-100 "百" 175
say cmn zh-please "请" 175
say cmn zh-hao "号" 175
say cmn zh-to "到" 175
say cmn zh-window "号窗口" 175
say cmn zh-handle "办理" 175

# Cantonese: the same counting words in espeak-ng's yue voice, from
# traditional characters. (Its Jyutping voice was tried for each word:
# it reads no word better, and drops the tone of 五 "ng5".)
yue_digits=(零 一 二 三 四 五 六 七 八 九)
for d in 0 1 2 3 4 5 6 7 8 9; do say yue "yue-$d" "${yue_digits[$d]}" 165; done
say yue yue-10 "十" 165
say yue yue-100 "百" 165
say yue yue-please "請" 165
say yue yue-hao "號" 165
say yue yue-to "到" 165
say yue yue-window "號窗口" 165

# English: digits, teens, tens, letters and phrases.
en_words=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen)
for n in $(seq 0 19); do say en "en-$n" "${en_words[$n]}"; done
for t in 20:twenty 30:thirty 40:forty 50:fifty 60:sixty 70:seventy 80:eighty 90:ninety; do
  say en "en-${t%%:*}" "${t##*:}"
done
for l in A B C D E F G H I J K L M N O P Q R S T U V W X Y Z; do say en "letter-$l" "$l"; done
say en en-number "Number"
say en en-please "please go to window"

# The chime: a soft two-tone "ding-dong" (E6 then C6) with a long decay,
# whose tail the announcer mixes under the first words.
sox -D -n -r $RATE -c 1 -b 16 "$tmp/ding.wav" synth 0.9 sine 1318.5 fade q 0.005 0.9 0.85 gain -9
sox -D -n -r $RATE -c 1 -b 16 "$tmp/dong.wav" synth 1.2 sine 1046.5 fade q 0.005 1.2 1.15 gain -9
sox -D -m "$tmp/ding.wav" "|sox -D $tmp/dong.wav -p pad 0.45" -b 16 chime.wav gain -n -3

echo "generated $(ls *.wav | wc -l) clips in $(pwd)"

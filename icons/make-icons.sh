#!/bin/sh
# Regenerates the PNG icons from simple shapes (ImageMagick). The app icon: an envelope in a gate.
set -eu
convert() { /usr/bin/convert "$@"; }
cd "$(dirname "$0")"
app() { convert -size "$1x$1" xc:none -fill '#2f6db5' -draw "roundrectangle 0,0 $(($1-1)),$(($1-1)) $(($1/6)),$(($1/6))" \
  -fill white -draw "rectangle $(($1/5)),$(($1*3/10)) $(($1*4/5)),$(($1*7/10))" \
  -stroke '#2f6db5' -strokewidth $(($1/24+1)) -fill none -draw "polyline $(($1/5)),$(($1*3/10)) $(($1/2)),$(($1/2)) $(($1*4/5)),$(($1*3/10))" \
  "PNG32:$2"; }
app 32 32x32.png; app 128 128x128.png; app 256 128x128@2x.png; app 512 icon.png
tray() { convert -size 64x64 xc:none -fill "$2" -draw 'circle 32,32 32,4' \
  -fill white -draw 'rectangle 16,22 48,42' -stroke "$2" -strokewidth 3 -fill none -draw 'polyline 16,22 32,34 48,22' \
  "PNG32:tray/$1.png"; }
tray offline '#808080'; tray online '#2e8b57'; tray busy '#2f6db5'; tray attention '#d9822b'

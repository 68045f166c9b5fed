package pdq

import "image/color"

func colorGray(v uint16) color.Gray { return color.Gray{Y: uint8(v)} }

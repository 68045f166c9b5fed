//go:build cgo && !nojpegturbo

package jpegturbo

/*
#cgo LDFLAGS: -ljpeg
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
// hf_heap_in_use is how many bytes the C heap has handed out (for the tests' leak check).
static long long hf_heap_in_use(void) {
	struct mallinfo2 m = mallinfo2();
	return (long long)(m.uordblks + m.hblkhd);
}
#else
static long long hf_heap_in_use(void) { return -1; }
#endif

static int hf_turbo_version(void) {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
	return LIBJPEG_TURBO_VERSION_NUMBER;
#else
	return 0; // another libjpeg
#endif
}

enum {
	HF_OK = 0,
	HF_ERROR = 1,       // libjpeg's error_exit: the file cannot be decoded
	HF_WARNING = 2,     // a libjpeg warning: corrupt or truncated data
	HF_SCANS = 3,       // more scans than max_scans
	HF_COLORSPACE = 4,  // not grey, YCbCr or RGB
	HF_MISMATCH = 5     // the output is not the size of the buffer (cannot happen)
};

typedef struct {
	int width, height, components, color_space, progressive;
	int out_width, out_height, out_components;
	char msg[JMSG_LENGTH_MAX];
} hf_info;

typedef struct {
	struct jpeg_error_mgr pub; // first, so the library's pointer is ours too
	jmp_buf jump;
	int code;
	char *msg;
} hf_error;

typedef struct {
	struct jpeg_progress_mgr pub; // first
	int max_scans;
} hf_progress;

static void hf_error_exit(j_common_ptr cinfo) {
	hf_error *e = (hf_error *)cinfo->err;
	if (e->code == HF_OK)
		e->code = HF_ERROR;
	(*cinfo->err->format_message)(cinfo, e->msg);
	longjmp(e->jump, 1);
}

// A warning (level -1) means corrupt data that libjpeg would paper over: stop instead.
// Trace messages (level >= 0) are dropped. Nothing is ever printed.
static void hf_emit_message(j_common_ptr cinfo, int level) {
	if (level < 0) {
		((hf_error *)cinfo->err)->code = HF_WARNING;
		hf_error_exit(cinfo);
	}
}

static void hf_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void hf_progress_monitor(j_common_ptr cinfo) {
	hf_progress *p = (hf_progress *)cinfo->progress;
	j_decompress_ptr d = (j_decompress_ptr)cinfo;
	if (d->input_scan_number > p->max_scans) {
		hf_error *e = (hf_error *)cinfo->err;
		e->code = HF_SCANS;
		snprintf(e->msg, JMSG_LENGTH_MAX, "more than %d scans", p->max_scans);
		longjmp(e->jump, 1);
	}
}

// hf_decode reads the header of the JPEG file data[0:len] into info. When out is not NULL it
// then decodes the image, scaled by 1/scale_denom, into out, which must hold exactly
// out_width × out_height × out_components bytes as the header call gave them. It returns HF_OK
// or an error code with info->msg set; libjpeg's memory is freed on every path.
static int hf_decode(const unsigned char *data, unsigned long len, int scale_denom, int max_scans,
                     unsigned char *out, size_t out_len, hf_info *info) {
	struct jpeg_decompress_struct cinfo;
	hf_error err;
	hf_progress prog;
	memset(&cinfo, 0, sizeof cinfo); // so that jpeg_destroy_decompress is safe at any point
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = hf_error_exit;
	err.pub.emit_message = hf_emit_message;
	err.pub.output_message = hf_output_message;
	err.code = HF_OK;
	err.msg = info->msg;
	info->msg[0] = 0;
	if (setjmp(err.jump)) {
		jpeg_destroy_decompress(&cinfo);
		return err.code;
	}
	jpeg_create_decompress(&cinfo);
	prog.pub.progress_monitor = hf_progress_monitor;
	prog.max_scans = max_scans;
	cinfo.progress = &prog.pub;
	jpeg_mem_src(&cinfo, data, len);
	jpeg_read_header(&cinfo, TRUE);
	info->width = cinfo.image_width;
	info->height = cinfo.image_height;
	info->components = cinfo.num_components;
	info->color_space = cinfo.jpeg_color_space;
	info->progressive = cinfo.progressive_mode;
	if (cinfo.num_components == 1 && cinfo.jpeg_color_space == JCS_GRAYSCALE) {
		cinfo.out_color_space = JCS_GRAYSCALE;
	} else if (cinfo.num_components == 3 && (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB)) {
		cinfo.out_color_space = JCS_RGB;
	} else {
		snprintf(info->msg, JMSG_LENGTH_MAX, "%d components in colour space %d", cinfo.num_components, (int)cinfo.jpeg_color_space);
		jpeg_destroy_decompress(&cinfo);
		return HF_COLORSPACE;
	}
	cinfo.scale_num = 1;
	cinfo.scale_denom = scale_denom;
	jpeg_calc_output_dimensions(&cinfo);
	info->out_width = cinfo.output_width;
	info->out_height = cinfo.output_height;
	info->out_components = cinfo.output_components;
	if (out == NULL) {
		jpeg_destroy_decompress(&cinfo);
		return HF_OK;
	}
	jpeg_start_decompress(&cinfo);
	size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
	if ((int)cinfo.output_width != info->out_width || (int)cinfo.output_height != info->out_height ||
	    stride * cinfo.output_height != out_len) {
		snprintf(info->msg, JMSG_LENGTH_MAX, "output %ux%ux%d does not fit the buffer of %zu bytes",
		         cinfo.output_width, cinfo.output_height, cinfo.output_components, out_len);
		jpeg_destroy_decompress(&cinfo);
		return HF_MISMATCH;
	}
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW rows[16];
		JDIMENSION n = cinfo.output_height - cinfo.output_scanline;
		if (n > 16)
			n = 16;
		for (JDIMENSION i = 0; i < n; i++)
			rows[i] = out + (size_t)(cinfo.output_scanline + i) * stride;
		jpeg_read_scanlines(&cinfo, rows, n);
	}
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	return HF_OK;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Available reports whether this build decodes with libjpeg-turbo.
const Available = true

// Version names the library this build was compiled against.
func Version() string {
	v := int(C.hf_turbo_version())
	if v == 0 {
		return fmt.Sprintf("libjpeg (API %d, not libjpeg-turbo)", int(C.JPEG_LIB_VERSION))
	}
	return fmt.Sprintf("libjpeg-turbo %d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// Decode decodes the JPEG file data. Grey files give one channel, YCbCr and RGB files three
// (R, G, B, converted by libjpeg with its default, accurate settings: the integer "islow" IDCT
// and smooth ("fancy") chroma upsampling, as Pillow and djpeg use). Other colour spaces give
// [ErrUnsupported]; a file declaring more than opts.MaxPixels gives [ErrTooLarge] before any
// pixel buffer is allocated; anything libjpeg refuses or warns about gives [ErrCorrupt] with
// libjpeg's message.
func Decode(data []byte, opts Options) (*Image, error) {
	return DecodeInto(data, opts, nil)
}

// DecodeInto is [Decode] writing the pixels into buf when its capacity is enough (they then
// share its storage), and into a new buffer otherwise.
func DecodeInto(data []byte, opts Options, buf []byte) (*Image, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrCorrupt)
	}
	var info C.hf_info
	src := (*C.uchar)(unsafe.Pointer(&data[0]))
	if err := result(C.hf_decode(src, C.ulong(len(data)), C.int(opts.ScaleDenom), C.int(opts.MaxScans), nil, 0, &info), &info); err != nil {
		return nil, err
	}
	if err := checkSize(int(info.width), int(info.height), opts.MaxPixels); err != nil {
		return nil, err
	}
	img := &Image{Width: int(info.out_width), Height: int(info.out_height), Channels: int(info.out_components)}
	if img.Width <= 0 || img.Height <= 0 || (img.Channels != 1 && img.Channels != 3) {
		return nil, fmt.Errorf("%w: libjpeg-turbo gives a %d×%d image of %d channels", ErrCorrupt, img.Width, img.Height, img.Channels)
	}
	if n := img.Width * img.Height * img.Channels; cap(buf) >= n {
		img.Pix = buf[:n] // every byte is written: libjpeg fills every row or fails
	} else {
		img.Pix = make([]byte, n)
	}
	dst := (*C.uchar)(unsafe.Pointer(&img.Pix[0]))
	if err := result(C.hf_decode(src, C.ulong(len(data)), C.int(opts.ScaleDenom), C.int(opts.MaxScans), dst, C.size_t(len(img.Pix)), &info), &info); err != nil {
		return nil, err
	}
	return img, nil
}

// result turns hf_decode's return code into an error.
func result(rc C.int, info *C.hf_info) error {
	msg := C.GoString(&info.msg[0])
	switch rc {
	case C.HF_OK:
		return nil
	case C.HF_WARNING:
		return fmt.Errorf("%w: libjpeg-turbo: %s", ErrCorrupt, msg)
	case C.HF_SCANS:
		return fmt.Errorf("%w: libjpeg-turbo: %s", ErrTooManyScans, msg)
	case C.HF_COLORSPACE:
		return fmt.Errorf("%w: libjpeg-turbo: %s", ErrUnsupported, msg)
	default:
		return fmt.Errorf("%w: libjpeg-turbo: %s", ErrCorrupt, msg)
	}
}

// cHeapInUse is the number of bytes the C heap has handed out, or -1 where that is unknown
// (outside glibc): for the tests, which check that no decode leaks C memory.
func cHeapInUse() int64 { return int64(C.hf_heap_in_use()) }

// Speak a batch of words with GnuSpeech, an articulatory synthesizer (a tube model of the vocal
// tract, compiled to WebAssembly). The package's own `synthesize()` only sets voice, tempo and
// control rate; this script also writes a voice file per speaker (tract length, glottal pulse,
// breathiness, tract radii) and turns off the random intonation, whose seed is the clock.
//
// usage: node speak.mjs JOBS.json
//   JOBS.json: [{"text": "yes", "out": "/abs/x.wav", "tempo": 1.0, "pitch_offset": -4.0,
//                "voice": "female", "params": {"vocal_tract_length": 15.2, ...}}, ...]
// Writes one 16-bit mono wav per job; exits non-zero with a one-line message on the first error.
import { readFileSync, writeFileSync } from 'fs'
import { defaultTrmControlModelFileContent as controlModel } from '@echogarden/gnuspeech-wasm/dist/utilities/DefaultTrmControlModel.js'
import initializer from '@echogarden/gnuspeech-wasm/wasm/gnuspeech.js'
import { wrapEmscriptenModuleHeap } from 'wasm-heap-manager'

const DATA = '/data/en'

function setKeys(text, values) {
  for (const [key, value] of Object.entries(values)) {
    const line = new RegExp(`^${key} = .*$`, 'm')
    if (!line.test(text)) throw new Error(`unknown GnuSpeech setting ${key}`)
    text = text.replace(line, `${key} = ${value}`)
  }
  return text
}

try {
  const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'))
  const m = await initializer()
  const heap = wrapEmscriptenModuleHeap(m)
  const baseVoices = {}
  for (const job of jobs) {
    baseVoices[job.voice] ??= new TextDecoder().decode(m.FS.readFile(`${DATA}/voice_${job.voice}.txt`))
    m.FS.writeFile(`${DATA}/voice_kws.txt`, setKeys(baseVoices[job.voice], job.params ?? {}))
    m.FS.writeFile(`${DATA}/trm_control_model.txt`, setKeys(controlModel, {
      voice_name: 'kws', tempo: job.tempo, pitch_offset: job.pitch_offset,
      random_intonation: 0, intonation_drift: 0,
    }))
    const refs = [job.text, './out.wav', DATA, './out-params.txt'].map(s => heap.allocNullTerminatedUtf8String(s))
    m._GnuSpeech_synthesizeToFile(refs[0].address, refs[1].address, refs[2].address, refs[3].address, false)
    refs.forEach(r => r.free())
    writeFileSync(job.out, m.FS.readFile('./out.wav'))
    m.FS.unlink('./out.wav')
  }
} catch (err) {
  console.error(`gnuspeech: ${err.message ?? err}`)
  process.exit(1)
}

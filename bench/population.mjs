#!/usr/bin/env node
// Kasama-like population generator and loader for the search benchmark (bench/README.md,
// "Search benchmark"). Generates the residents of a Japanese municipality (茨城県笠間市) with
// their annual checkups (特定健診) and outpatient visits, deterministically from a seed, and
// POSTs them as transaction Bundles, one patient (and everything about them) per Bundle.
//
//   node population.mjs BASE_URL [options]
//     --patients N       residents to generate (default 1000)
//     --resources R      instead of --patients: stop after the Bundle that reaches R resources
//     --seed S           PRNG seed (default 20260401); the same seed and index give the same patient
//     --start-index I    first patient index (default 0): a second run with I = the first run's
//                        next_index appends different residents (identifier, names, data)
//     --concurrency K    Bundles in flight (default 4), keep-alive TLS connections
//     --slice N          report the ingest rate every N resources (default 50000)
//     --ca FILE          CA certificate (default: NODE_EXTRA_CA_CERTS, as the e2e tests do)
//     --data-dir DIR     server data dir: demo-credentials.json for the bearer token (auth.mjs;
//                        required unless --dry-run), server.pid and mariadb/mariadbd.pid for the
//                        per-slice CPU split
//     --out FILE         JSON result (default bench/results/population-latest.json)
//     --no-verify        skip the before/after _summary=count check per resource type
//     --dry-run          generate only (no server): print the mix (resources per patient, share of
//                        each Observation code) and exit; with --print, print the first Bundle
//
// Mix (per patient, averages from --dry-run with the default seed; see the README):
//   1 Patient, ~1.2 checkup Encounters with ~16 Observations each, ~1.3 outpatient Encounters
//   with blood pressure (+ weight, + HbA1c/glucose for diabetics), ~1 Condition:
//   about 25 resources per patient. The counting code is LOINC 4548-4 (HbA1c): about 5 % of
//   all Observations.
//
// Bundles are generated lazily, one per request, so memory does not grow with --patients.
// Exits 1 if any Bundle fails (not 200 with a transaction-response of the same length), if the
// counts do not match, or after 20 failed Bundles (the run is then aborted).
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import { cliArgs } from './cli.mjs';
import { cpuMeter } from './cpu.mjs';
import { benchBearer } from './auth.mjs';
import { rng } from '../tests/e2e/lib/random.js';

const here = path.dirname(fileURLToPath(import.meta.url));

// ------------------------------------------------------------------------------ arguments
const args = cliArgs(import.meta.url, { flags: ['dry-run', 'no-verify', 'print'], positionalRequired: !process.argv.includes('--dry-run') });
const num = (v, d) => (v === undefined ? d : Number(String(v).replace(/_/g, '')));
const base = (args.positional[0] ?? '').replace(/\/+$/, '');
const seed = num(args.seed, 20260401) >>> 0;
const startIndex = num(args['start-index'], 0);
const maxPatients = args.resources !== undefined ? Infinity : num(args.patients, 1000);
const maxResources = args.resources !== undefined ? num(args.resources) : Infinity;
const concurrency = Math.max(1, num(args.concurrency, 4));
const sliceSize = Math.max(1, num(args.slice, 50000));
const outFile = args.out ?? path.join(here, 'results', 'population-latest.json');
for (const [k, v] of Object.entries({ seed, startIndex, concurrency, sliceSize })) {
  if (!Number.isFinite(v) || v < 0) {
    console.error(`population: bad value for ${k}`);
    process.exit(2);
  }
}

// ------------------------------------------------------------------------------ PRNG
// mulberry32 (tests/e2e/lib/random.js), seeded per patient from (seed, index) so that
// a patient does not depend on how many were generated before it.
const mulberry32 = rng;
function mix(a, b) { // a 32-bit hash of two 32-bit numbers (murmur3 finaliser)
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return h >>> 0;
}
class Rand {
  constructor(s) { this.r = mulberry32(s); }
  u() { return this.r(); }
  int(lo, hi) { return lo + Math.floor(this.r() * (hi - lo + 1)); } // inclusive
  pick(xs) { return xs[Math.floor(this.r() * xs.length)]; }
  chance(p) { return this.r() < p; }
  normal(mean, sd) { // Box-Muller
    const u = 1 - this.r(), v = this.r();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  weighted(pairs) { // [[value, weight], ...]
    let total = 0;
    for (const [, w] of pairs) total += w;
    let x = this.r() * total;
    for (const [v, w] of pairs) if ((x -= w) < 0) return v;
    return pairs[pairs.length - 1][0];
  }
}

// ------------------------------------------------------------------------------ vocabulary
// Family names common in Ibaraki with their kana readings; the weight is a rough frequency so that
// prefixes like 佐 / サ and names like 鈴木 match many residents, as in a real town.
const FAMILY = [
  ['鈴木', 'スズキ', 60], ['佐藤', 'サトウ', 40], ['小林', 'コバヤシ', 30], ['渡辺', 'ワタナベ', 25],
  ['高橋', 'タカハシ', 25], ['木村', 'キムラ', 18], ['飯田', 'イイダ', 15], ['根本', 'ネモト', 15],
  ['菊池', 'キクチ', 14], ['石川', 'イシカワ', 14], ['田中', 'タナカ', 14], ['伊藤', 'イトウ', 13],
  ['山口', 'ヤマグチ', 12], ['中村', 'ナカムラ', 12], ['加藤', 'カトウ', 12], ['斎藤', 'サイトウ', 12],
  ['吉田', 'ヨシダ', 11], ['山本', 'ヤマモト', 11], ['石井', 'イシイ', 10], ['野口', 'ノグチ', 10],
  ['荒井', 'アライ', 9], ['大和田', 'オオワダ', 9], ['小松崎', 'コマツザキ', 9], ['海老沢', 'エビサワ', 8],
  ['綿引', 'ワタヒキ', 8], ['額賀', 'ヌカガ', 7], ['圷', 'アクツ', 7], ['石塚', 'イシツカ', 7],
  ['関', 'セキ', 7], ['佐々木', 'ササキ', 7], ['山崎', 'ヤマザキ', 6], ['松本', 'マツモト', 6],
  ['井上', 'イノウエ', 6], ['清水', 'シミズ', 6], ['森', 'モリ', 5], ['池田', 'イケダ', 5],
  ['橋本', 'ハシモト', 5], ['青木', 'アオキ', 5], ['坂本', 'サカモト', 5], ['藤田', 'フジタ', 5],
  ['長谷川', 'ハセガワ', 4], ['近藤', 'コンドウ', 4], ['遠藤', 'エンドウ', 4], ['岡田', 'オカダ', 4],
  ['後藤', 'ゴトウ', 4], ['村上', 'ムラカミ', 4], ['小川', 'オガワ', 4], ['前田', 'マエダ', 4],
  ['菅谷', 'スガヤ', 3], ['大貫', 'オオヌキ', 3], ['会沢', 'アイザワ', 3], ['軍司', 'グンジ', 3],
  ['塙', 'ハナワ', 3], ['谷田部', 'ヤタベ', 3], ['仲田', 'ナカタ', 3], ['川又', 'カワマタ', 3],
].map(([kanji, kana, w]) => [{ kanji, kana }, w]);
const GIVEN_M = [
  ['清', 'キヨシ'], ['茂', 'シゲル'], ['博', 'ヒロシ'], ['実', 'ミノル'], ['進', 'ススム'], ['勇', 'イサム'],
  ['正', 'タダシ'], ['隆', 'タカシ'], ['健一', 'ケンイチ'], ['誠', 'マコト'], ['和夫', 'カズオ'], ['昭', 'アキラ'],
  ['修', 'オサム'], ['勝', 'マサル'], ['豊', 'ユタカ'], ['直樹', 'ナオキ'], ['達也', 'タツヤ'], ['哲也', 'テツヤ'],
  ['大輔', 'ダイスケ'], ['翔太', 'ショウタ'], ['拓也', 'タクヤ'], ['健太', 'ケンタ'], ['一郎', 'イチロウ'], ['太郎', 'タロウ'],
  ['光男', 'ミツオ'], ['秀樹', 'ヒデキ'], ['浩二', 'コウジ'], ['剛', 'ツヨシ'], ['亮', 'リョウ'], ['大樹', 'ダイキ'],
].map(([kanji, kana]) => ({ kanji, kana }));
const GIVEN_F = [
  ['花子', 'ハナコ'], ['幸子', 'サチコ'], ['和子', 'カズコ'], ['節子', 'セツコ'], ['洋子', 'ヨウコ'], ['恵子', 'ケイコ'],
  ['京子', 'キョウコ'], ['美智子', 'ミチコ'], ['久美子', 'クミコ'], ['裕子', 'ユウコ'], ['由美子', 'ユミコ'], ['直美', 'ナオミ'],
  ['恵美', 'エミ'], ['智子', 'トモコ'], ['真由美', 'マユミ'], ['明美', 'アケミ'], ['美穂', 'ミホ'], ['愛', 'アイ'],
  ['彩', 'アヤ'], ['舞', 'マイ'], ['千尋', 'チヒロ'], ['美咲', 'ミサキ'], ['キヨ', 'キヨ'], ['トミ', 'トミ'],
  ['文子', 'フミコ'], ['静江', 'シズエ'], ['陽子', 'ヨウコ'], ['久子', 'ヒサコ'], ['典子', 'ノリコ'], ['香織', 'カオリ'],
].map(([kanji, kana]) => ({ kanji, kana }));
// Towns (大字) of Kasama with synthetic postal codes in 309-15xx / 309-16xx.
const TOWNS = [
  ['笠間', '309-1611'], ['石井', '309-1613'], ['旭町', '309-1612'], ['赤坂', '309-1615'], ['下市毛', '309-1616'],
  ['南友部', '309-1617'], ['大田町', '309-1621'], ['片庭', '309-1624'], ['本戸', '309-1625'], ['寺崎', '309-1627'],
  ['箱田', '309-1631'], ['稲田', '309-1635'], ['福原', '309-1622'], ['飯田', '309-1601'], ['池野辺', '309-1603'],
  ['大渕', '309-1606'], ['来栖', '309-1604'], ['上郷', '309-1502'], ['福田', '309-1503'], ['平町', '309-1505'],
  ['日沢', '309-1508'], ['小原', '309-1511'], ['手越', '309-1515'], ['湯崎', '309-1521'],
];

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
// [key, LOINC, display, 日本語, UCUM unit, category, decimals]
const ITEMS = Object.fromEntries([
  ['height', '8302-2', 'Body height', '身長', 'cm', 'vital-signs', 1],
  ['weight', '29463-7', 'Body weight', '体重', 'kg', 'vital-signs', 1],
  ['bmi', '39156-5', 'Body mass index (BMI) [Ratio]', 'BMI', 'kg/m2', 'vital-signs', 1],
  ['waist', '8280-0', 'Waist Circumference at umbilicus by Tape measure', '腹囲', 'cm', 'vital-signs', 1],
  ['sbp', '8480-6', 'Systolic blood pressure', '収縮期血圧', 'mm[Hg]', 'vital-signs', 0],
  ['dbp', '8462-4', 'Diastolic blood pressure', '拡張期血圧', 'mm[Hg]', 'vital-signs', 0],
  ['tg', '2571-8', 'Triglyceride [Mass/volume] in Serum or Plasma', '中性脂肪', 'mg/dL', 'laboratory', 0],
  ['hdl', '2085-9', 'Cholesterol in HDL [Mass/volume] in Serum or Plasma', 'HDLコレステロール', 'mg/dL', 'laboratory', 0],
  ['ldl', '13457-7', 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation', 'LDLコレステロール', 'mg/dL', 'laboratory', 0],
  ['tc', '2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma', '総コレステロール', 'mg/dL', 'laboratory', 0],
  ['ast', '1920-8', 'Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma', 'AST(GOT)', 'U/L', 'laboratory', 0],
  ['alt', '1742-6', 'Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma', 'ALT(GPT)', 'U/L', 'laboratory', 0],
  ['ggt', '2324-2', 'Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or Plasma', 'γ-GT(γ-GTP)', 'U/L', 'laboratory', 0],
  ['glu', '2345-7', 'Glucose [Mass/volume] in Serum or Plasma', '空腹時血糖', 'mg/dL', 'laboratory', 0],
  ['hba1c', '4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', 'HbA1c(NGSP)', '%', 'laboratory', 1],
  ['cre', '2160-0', 'Creatinine [Mass/volume] in Serum or Plasma', '血清クレアチニン', 'mg/dL', 'laboratory', 2],
  ['egfr', '33914-3', 'Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)', 'eGFR', 'mL/min/{1.73_m2}', 'laboratory', 1],
  ['ua', '3084-1', 'Urate [Mass/volume] in Serum or Plasma', '尿酸', 'mg/dL', 'laboratory', 1],
  ['hb', '718-7', 'Hemoglobin [Mass/volume] in Blood', '血色素量', 'g/dL', 'laboratory', 1],
  ['uglu', '25428-4', 'Glucose [Presence] in Urine by Test strip', '尿糖', null, 'laboratory', 0],
  ['upro', '20454-5', 'Protein [Presence] in Urine by Test strip', '尿蛋白', null, 'laboratory', 0],
].map(([key, code, display, ja, unit, category, decimals]) => [key, { key, code, display, ja, unit, category, decimals }]));
const COUNT_CODE = '4548-4'; // ~5 % of all Observations
const DIPSTICK = [['-', '陰性'], ['±', '偽陽性'], ['+', '陽性(1+)'], ['2+', '陽性(2+)']];
// ICD-10 (WHO) codes with Japanese names; flags say which ones drive extra visits and labs.
const CONDITIONS = {
  htn: ['I10', '本態性高血圧症'], dm: ['E11.9', '2型糖尿病'], lipid: ['E78.5', '脂質異常症'],
  other: [['K21.9', '逆流性食道炎'], ['M81.9', '骨粗鬆症'], ['J45.9', '気管支喘息'], ['N18.3', '慢性腎臓病ステージ3'],
    ['E66.9', '肥満症'], ['I48.9', '心房細動'], ['M17.9', '変形性膝関節症'], ['K29.7', '胃炎'], ['J30.4', 'アレルギー性鼻炎'],
    ['F32.9', 'うつ病'], ['G47.0', '不眠症'], ['E03.9', '甲状腺機能低下症']],
};

// ------------------------------------------------------------------------------ generator
const pad = (n, w = 2) => String(n).padStart(w, '0');
const DAYS_IN = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function randomDay(rnd, year, monthLo = 1, monthHi = 12) {
  const m = rnd.int(monthLo, monthHi);
  const d = rnd.int(1, DAYS_IN[m - 1] + (m === 2 && year % 4 === 0 ? 1 : 0));
  return { y: year, m, d };
}
const dateText = ({ y, m, d }) => `${y}-${pad(m)}-${pad(d)}`;
const at = (day, hh, mm) => `${dateText(day)}T${pad(hh)}:${pad(mm)}:00+09:00`;
const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const LAST_YEAR = 2026, LAST_MONTH_2026 = 10; // data up to October 2026

/** The patient with this index, and everything about them, as a transaction Bundle object. */
function patientBundle(seedValue, index) {
  const rnd = new Rand(mix(seedValue, index));
  const uuid = (j) => `urn:uuid:${mix(seedValue, 0x51ed).toString(16).padStart(8, '0')}-${pad(j.toString(16), 4)}-4000-8000-${index.toString(16).padStart(12, '0')}`;
  let nextUuid = 0;
  const entries = [];
  const add = (resource) => {
    const fullUrl = uuid(nextUuid++);
    entries.push({ fullUrl, resource, request: { method: 'POST', url: resource.resourceType } });
    return fullUrl;
  };

  // --- the resident
  const male = rnd.chance(0.49);
  const family = rnd.weighted(FAMILY);
  const given = rnd.pick(male ? GIVEN_M : GIVEN_F);
  const birthYear = rnd.int(1930, 2005);
  const birth = randomDay(rnd, birthYear);
  const [town, postal] = rnd.pick(TOWNS);
  const line = `${town}${rnd.int(1, 3000)}${rnd.chance(0.4) ? '-' + rnd.int(1, 30) : ''}`;
  const REP = 'http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation';
  const patient = {
    resourceType: 'Patient',
    identifier: [{ system: 'http://kasama-fhir.example/sid/resident', value: `R${pad(index + 1, 9)}` }],
    active: true,
    name: [
      { extension: [{ url: REP, valueCode: 'IDE' }], use: 'official', text: `${family.kanji} ${given.kanji}`, family: family.kanji, given: [given.kanji] },
      { extension: [{ url: REP, valueCode: 'SYL' }], use: 'official', text: `${family.kana} ${given.kana}`, family: family.kana, given: [given.kana] },
    ],
    telecom: rnd.chance(0.7) ? [{ system: 'phone', value: `0296-${rnd.int(70, 79)}-${pad(rnd.int(0, 9999), 4)}`, use: 'home' }] : undefined,
    gender: male ? 'male' : 'female',
    birthDate: dateText(birth),
    address: [{
      use: 'home', text: `〒${postal} 茨城県笠間市${line}`, line: [line], city: '笠間市', district: town,
      state: '茨城県', postalCode: postal, country: 'JP',
    }],
  };
  if (!patient.telecom) delete patient.telecom;
  const patientUrl = add(patient);
  const subject = { reference: patientUrl };

  // --- health profile: baselines that the checkups vary around
  const ageIn = (y) => y - birthYear;
  const older = clamp((2020 - birthYear - 20) / 70, 0, 1); // 0 young .. 1 old
  const dm = rnd.chance(0.04 + 0.16 * older);
  const htn = rnd.chance(0.08 + 0.4 * older);
  const lipid = rnd.chance(0.1 + 0.2 * older);
  const height = rnd.normal(male ? 168 - 6 * older : 155 - 5 * older, 6);
  const bmi0 = clamp(rnd.normal(dm ? 25.5 : 22.8, 3), 15, 40);
  const base = {
    sbp: rnd.normal(htn ? 142 : 120 + 15 * older, 10), dbp: rnd.normal(htn ? 88 : 74 + 5 * older, 7),
    tg: Math.exp(rnd.normal(Math.log(lipid ? 160 : 100), 0.35)), hdl: rnd.normal(male ? 55 : 65, 12),
    ldl: rnd.normal(lipid ? 150 : 115, 25), ast: Math.exp(rnd.normal(Math.log(22), 0.3)), alt: Math.exp(rnd.normal(Math.log(20), 0.45)),
    ggt: Math.exp(rnd.normal(Math.log(male ? 35 : 20), 0.6)), glu: rnd.normal(dm ? 140 : 92, dm ? 25 : 8),
    hba1c: rnd.normal(dm ? 7.2 : 5.5, dm ? 0.8 : 0.3), cre: rnd.normal(male ? 0.9 : 0.65, 0.12) + 0.2 * older,
    ua: rnd.normal(male ? 6 : 4.5, 1), hb: rnd.normal(male ? 14.8 : 13, 1), waist: 0,
  };
  const value = (key, y) => {
    const drift = (y - 2015) / 10;
    const weight = bmi0 * (1 + 0.02 * rnd.normal(drift, 0.5)) * (height / 100) ** 2;
    switch (key) {
      case 'height': return height;
      case 'weight': return weight;
      case 'bmi': return weight / (height / 100) ** 2;
      case 'waist': return clamp(rnd.normal(50 + 1.35 * (weight / (height / 100) ** 2), 3), 55, 140);
      case 'tc': return base.ldl + base.hdl + base.tg / 5 + rnd.normal(0, 5);
      case 'egfr': {
        const age = Math.max(20, ageIn(y));
        return clamp(194 * base.cre ** -1.094 * age ** -0.287 * (male ? 1 : 0.739), 5, 150);
      }
      default: return Math.max(0.1, base[key] * (1 + rnd.normal(0, 0.06)));
    }
  };

  // --- encounters and their observations
  const encounterYears = new Set();
  const observation = (key, y, time, enc) => {
    const it = ITEMS[key];
    const obs = {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: CAT, code: it.category, display: it.category === 'vital-signs' ? 'Vital Signs' : 'Laboratory' }] }],
      code: { coding: [{ system: LOINC, code: it.code, display: it.display }], text: it.ja },
      subject,
      encounter: { reference: enc },
      effectiveDateTime: time,
    };
    if (it.unit) {
      obs.valueQuantity = { value: round(value(key, y), it.decimals), unit: it.unit, system: UCUM, code: it.unit };
    } else {
      const [code, display] = rnd.weighted([[DIPSTICK[0], 85], [DIPSTICK[1], 8], [DIPSTICK[2], 5], [DIPSTICK[3], 2]]);
      obs.valueCodeableConcept = { coding: [{ system: 'http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationUrineDipstick', code, display }], text: code };
    }
    add(obs);
  };
  const encounter = (day, kind) => {
    const hh = rnd.int(8, 15), mm = rnd.pick([0, 10, 15, 20, 30, 40, 45, 50]);
    const minutes = kind === 'checkup' ? rnd.int(30, 90) : rnd.int(10, 40);
    const endH = hh + Math.floor((mm + minutes) / 60), endM = (mm + minutes) % 60;
    const enc = {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
      type: [kind === 'checkup'
        ? { coding: [{ system: 'http://kasama-fhir.example/CodeSystem/encounter-type', code: 'tokutei-kenshin', display: '特定健康診査' }] }
        : { coding: [{ system: 'http://kasama-fhir.example/CodeSystem/encounter-type', code: 'outpatient', display: '外来受診' }] }],
      subject,
      period: { start: at(day, hh, mm), end: at(day, endH, endM) },
    };
    return { url: add(enc), time: at(day, hh, mm) };
  };
  const yearsFrom = (lo) => Array.from({ length: LAST_YEAR - lo + 1 }, (_, i) => lo + i);
  const firstYear = Math.max(2015, birthYear + 18);

  // annual checkups (特定健診): 0-3 of the years 2015-2026 (adults only)
  const checkups = rnd.weighted([[0, 34], [1, 36], [2, 18], [3, 12]]);
  const pool = yearsFrom(firstYear);
  for (let i = 0; i < pool.length - 1; i++) { // shuffle, then take the first few
    const j = rnd.int(i, pool.length - 1);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  const years = pool.slice(0, checkups).sort((a, b) => a - b);
  for (const y of years) {
    const day = randomDay(rnd, y, 4, y === LAST_YEAR ? LAST_MONTH_2026 : 12);
    encounterYears.add(y);
    const { url, time } = encounter(day, 'checkup');
    const items = ['height', 'weight', 'bmi', 'waist', 'sbp', 'dbp', 'tg', 'hdl', 'ldl', 'ast', 'alt', 'ggt', 'uglu', 'upro'];
    if (rnd.chance(0.45)) items.push('glu');
    if (rnd.chance(0.65)) items.push('hba1c');
    if (rnd.chance(0.2)) items.push('hb', 'cre', 'egfr');
    if (rnd.chance(0.2)) items.push('ua');
    if (rnd.chance(0.2)) items.push('tc');
    for (const key of items) observation(key, y, time, url);
  }
  // outpatient visits: blood pressure, sometimes weight; diabetics come more often with labs
  const visits = rnd.weighted([[0, 40], [1, 30], [2, 18], [3, 12]]) + (dm ? 2 : 0);
  for (let v = 0; v < visits; v++) {
    const y = rnd.int(firstYear, LAST_YEAR);
    const day = randomDay(rnd, y, 1, y === LAST_YEAR ? LAST_MONTH_2026 : 12);
    encounterYears.add(y);
    const { url, time } = encounter(day, 'outpatient');
    observation('sbp', y, time, url);
    observation('dbp', y, time, url);
    if (rnd.chance(0.3)) observation('weight', y, time, url);
    if (dm) {
      observation('hba1c', y, time, url);
      if (rnd.chance(0.5)) observation('glu', y, time, url);
    }
  }

  // conditions
  const conds = [];
  if (htn) conds.push(CONDITIONS.htn);
  if (dm) conds.push(CONDITIONS.dm);
  if (lipid) conds.push(CONDITIONS.lipid);
  for (const c of CONDITIONS.other) if (rnd.chance(0.035)) conds.push(c);
  for (const [code, display] of conds) {
    const onsetYear = rnd.int(Math.min(LAST_YEAR, Math.max(birthYear + 20, 1990)), LAST_YEAR);
    const onset = randomDay(rnd, onsetYear, 1, onsetYear === LAST_YEAR ? LAST_MONTH_2026 : 12);
    add({
      resourceType: 'Condition',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
      code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code, display }], text: display },
      subject,
      onsetDateTime: dateText(onset),
      recordedDate: dateText(onset),
    });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}

// ------------------------------------------------------------------------------ dry run
if (args['dry-run']) {
  if (args.print) {
    console.log(JSON.stringify(patientBundle(seed, startIndex), null, 1));
    process.exit(0);
  }
  const n = maxPatients;
  const byType = {}, byCode = {};
  let resources = 0, bytes = 0, patients = 0;
  for (let i = startIndex; patients < n && resources < maxResources; i++, patients++) {
    const b = patientBundle(seed, i);
    bytes += JSON.stringify(b).length;
    for (const e of b.entry) {
      resources++;
      byType[e.resource.resourceType] = (byType[e.resource.resourceType] ?? 0) + 1;
      if (e.resource.resourceType === 'Observation') {
        const c = e.resource.code.coding[0].code;
        byCode[c] = (byCode[c] ?? 0) + 1;
      }
    }
  }
  const obs = byType.Observation ?? 0;
  console.log(`${patients} patients (index ${startIndex}..${startIndex + patients - 1}, seed ${seed}): ${resources} resources, ` +
    `${(resources / patients).toFixed(2)} per patient, mean bundle ${Math.round(bytes / patients)} bytes`);
  console.log('by type: ' + Object.entries(byType).map(([t, c]) => `${t} ${c} (${(c / patients).toFixed(2)}/patient)`).join(', '));
  console.log('Observation codes (share of all Observations):');
  for (const [c, k] of Object.entries(byCode).sort((a, b) => b[1] - a[1])) {
    const it = Object.values(ITEMS).find((x) => x.code === c);
    console.log(`  ${c.padEnd(8)} ${String(k).padStart(8)} ${(100 * k / obs).toFixed(2).padStart(6)} %  ${it.ja}`);
  }
  process.exit(0);
}

// ------------------------------------------------------------------------------ CPU from /proc
const cpu = cpuMeter(args['data-dir']);
const cpuPids = cpu.pids;
const cpuMark = cpu.mark;
const cpuSince = cpu.since;

// ------------------------------------------------------------------------------ HTTP
const agentOpts = { keepAlive: true, maxSockets: concurrency };
if (args.ca) agentOpts.ca = fs.readFileSync(args.ca);
const agent = new https.Agent(agentOpts);
const bearer = await benchBearer('population', { base, dataDir: args['data-dir'], ca: agentOpts.ca });

async function request(method, url, body) {
  const token = await bearer(); // cached; renewed before it expires, outside the timing
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const headers = { Accept: 'application/fhir+json', Authorization: `Bearer ${token}` };
    if (body) Object.assign(headers, { 'Content-Type': 'application/fhir+json', Prefer: 'return=minimal', 'Content-Length': body.length });
    const req = https.request(url, { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8'), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', (e) => resolve({ status: 0, text: e.message, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    req.end(body);
  });
}
const TYPES = ['Patient', 'Encounter', 'Observation', 'Condition'];
async function counts() {
  const out = {};
  for (const t of TYPES) {
    const r = await request('GET', `${base}/${t}?_summary=count`);
    if (r.status !== 200) throw new Error(`GET ${t}?_summary=count: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    out[t] = JSON.parse(r.text).total;
  }
  return out;
}

// ------------------------------------------------------------------------------ load
const quantile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null);
const before = args['no-verify'] ? null : await counts().catch((e) => {
  console.error(`population: cannot count what the server holds: ${e.message}`);
  process.exit(1);
});
const generated = Object.fromEntries(TYPES.map((t) => [t, 0]));
const slices = [];
let sliceLat = [], sliceStart = cpuMark(), sliceFrom = 0;
const allLat = [];
let resources = 0, bundles = 0, errors = 0, nextIndex = startIndex, aborted = false, reachedResources = 0;
const t0 = process.hrtime.bigint();
const startMark = cpuMark();

// Resources per core-second of kasama-server + mariadbd: less sensitive than the raw rate to
// other load on a shared machine (as in report.mjs). null without --data-dir.
function perCore(rate, cpu) {
  const cores = ((cpu['kasama-server'] ?? 0) + (cpu.mariadbd ?? 0)) / 100;
  return Object.keys(cpuPids).length && cores > 0 ? Math.round(rate / cores) : null;
}

function closeSlice(final) {
  const now = process.hrtime.bigint();
  const seconds = Number(now - sliceStart.t) / 1e9;
  const n = resources - sliceFrom;
  if (n === 0) return;
  sliceLat.sort((a, b) => a - b);
  const s = {
    slice: slices.length + 1,
    from: sliceFrom,
    to: resources,
    resources: n,
    seconds: +seconds.toFixed(2),
    resources_per_s: Math.round(n / seconds),
    bundle_ms_p50: +quantile(sliceLat, 0.5).toFixed(1),
    bundle_ms_p99: +quantile(sliceLat, 0.99).toFixed(1),
    cpu_percent: cpuSince(sliceStart),
    partial: final && n < sliceSize,
  };
  s.resources_per_server_core_s = perCore(s.resources_per_s, s.cpu_percent);
  slices.push(s);
  const cpu = Object.entries(s.cpu_percent).map(([k, v]) => `${k} ${v}%`).join(', ');
  console.log(`[population] slice ${String(s.slice).padStart(3)}: resources ${s.from}..${s.to}, ${s.resources_per_s} res/s` +
    `${s.resources_per_server_core_s ? ` (${s.resources_per_server_core_s} per server core-s)` : ''}, ` +
    `bundle p50 ${s.bundle_ms_p50} ms p99 ${s.bundle_ms_p99} ms; CPU ${cpu}${s.partial ? ' (partial slice)' : ''}`);
  sliceLat = [];
  sliceStart = cpuMark();
  sliceFrom = resources;
}

async function worker() {
  while (!aborted) {
    if (nextIndex - startIndex >= maxPatients || reachedResources >= maxResources) return;
    const index = nextIndex++;
    const bundle = patientBundle(seed, index);
    const n = bundle.entry.length;
    reachedResources += n;
    for (const e of bundle.entry) generated[e.resource.resourceType]++;
    const body = Buffer.from(JSON.stringify(bundle));
    const r = await request('POST', base + '/', body);
    let ok = r.status === 200, why = `HTTP ${r.status}: ${r.text.slice(0, 300)}`;
    if (ok) {
      try {
        const j = JSON.parse(r.text);
        ok = j.resourceType === 'Bundle' && j.type === 'transaction-response' && (j.entry?.length ?? 0) === n;
        why = `unexpected response (${j.resourceType}/${j.type}, ${j.entry?.length} entries for ${n})`;
      } catch (e) {
        ok = false;
        why = `unparsable response: ${e.message}`;
      }
    }
    allLat.push(r.ms);
    sliceLat.push(r.ms);
    if (ok) {
      resources += n;
      bundles++;
      if (resources - sliceFrom >= sliceSize) closeSlice(false);
    } else {
      errors++;
      if (errors <= 5) console.error(`[population] patient index ${index}: ${why}`);
      if (errors >= 20) {
        console.error('[population] 20 failed bundles: aborting');
        aborted = true;
      }
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
closeSlice(true);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpuAll = cpuSince(startMark);

let after = null, verified = null;
if (before) {
  after = await counts();
  verified = TYPES.every((t) => after[t] - before[t] === generated[t]);
  if (!verified) {
    console.error('[population] counts do not match: ' + TYPES.map((t) => `${t} +${after[t] - before[t]} (generated ${generated[t]})`).join(', '));
  }
}
agent.destroy();

// ------------------------------------------------------------------------------ report
allLat.sort((a, b) => a - b);
const full = slices.filter((s) => !s.partial);
const first = full[0] ?? slices[0];
const last = full[full.length - 1] ?? slices[slices.length - 1];
const slowdown = first && last && first !== last ? +(1 - last.resources_per_s / first.resources_per_s).toFixed(3) : null;
const slowdownPerCore = slowdown !== null && first.resources_per_server_core_s && last.resources_per_server_core_s
  ? +(1 - last.resources_per_server_core_s / first.resources_per_server_core_s).toFixed(3) : null;
const result = {
  date: new Date().toISOString(),
  base,
  seed,
  start_index: startIndex,
  next_index: nextIndex,
  patients: nextIndex - startIndex,
  concurrency,
  slice_size: sliceSize,
  bundles,
  resources,
  generated,
  errors,
  aborted,
  seconds: +seconds.toFixed(2),
  resources_per_s: Math.round(resources / seconds),
  resources_per_server_core_s: perCore(Math.round(resources / seconds), cpuAll),
  bundle_ms_p50: allLat.length ? +quantile(allLat, 0.5).toFixed(1) : null,
  bundle_ms_p99: allLat.length ? +quantile(allLat, 0.99).toFixed(1) : null,
  first_slice_resources_per_s: first?.resources_per_s ?? null,
  last_slice_resources_per_s: last?.resources_per_s ?? null,
  last_vs_first_slowdown: slowdown,
  last_vs_first_slowdown_per_server_core: slowdownPerCore,
  cpu_percent: cpuAll,
  counts_before: before,
  counts_after: after,
  counts_verified: verified,
  count_code: `${LOINC}|${COUNT_CODE}`,
  slices,
};
fs.mkdirSync(path.dirname(outFile), { recursive: true });
fs.writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');

const out = [];
const P = (s, n) => String(s ?? '-').padStart(n);
out.push('');
out.push(`=========== population load (seed ${seed}, patients ${startIndex}..${nextIndex - 1}, ${concurrency} in flight) ===========`);
out.push(`  ${'slice'.padEnd(6)}${P('resources', 20)}${P('res/s', 8)}${P('/core-s', 9)}${P('bundle p50', 12)}${P('p99 ms', 8)}  CPU (100% = 1 core)`);
for (const s of slices) {
  out.push(`  ${String(s.slice).padEnd(6)}${P(`${s.from}..${s.to}`, 20)}${P(s.resources_per_s, 8)}${P(s.resources_per_server_core_s, 9)}${P(s.bundle_ms_p50, 12)}${P(s.bundle_ms_p99, 8)}  ` +
    Object.entries(s.cpu_percent).map(([k, v]) => `${k} ${v}%`).join(', ') + (s.partial ? '  (partial)' : ''));
}
out.push(`  total: ${resources} resources (${bundles} bundles) in ${result.seconds} s = ${result.resources_per_s} res/s; bundle p50 ${result.bundle_ms_p50} ms, p99 ${result.bundle_ms_p99} ms`);
out.push(`  CPU: ${Object.entries(cpuAll).map(([k, v]) => `${k} ${v}%`).join(', ')}` +
  `${result.resources_per_server_core_s ? `; ${result.resources_per_server_core_s} resources per server core-second` : ''}`);
out.push('  /core-s = res/s per core-second of kasama-server + mariadbd; "other" well above ~20% means a disturbed run.');
out.push(`  by type: ${TYPES.map((t) => `${t} ${generated[t]}`).join(', ')}; counting code ${LOINC}|${COUNT_CODE}`);
if (slowdown !== null) {
  out.push(`  last full slice vs first: ${last.resources_per_s} vs ${first.resources_per_s} res/s = ` +
    `${Math.abs(slowdown * 100).toFixed(1)} % ${slowdown >= 0 ? 'slower' : 'faster'} (target: < 20 % slower)` +
    (slowdownPerCore !== null ? `; per server core-second ${Math.abs(slowdownPerCore * 100).toFixed(1)} % ${slowdownPerCore >= 0 ? 'slower' : 'faster'}` : ''));
}
out.push(`  target >= 1500 res/s: ${result.resources_per_s >= 1500 ? 'met' : 'NOT met'}`);
if (verified !== null) out.push(`  counts after load: ${TYPES.map((t) => `${t} ${after[t]}`).join(', ')} (${verified ? 'match' : 'DO NOT MATCH'} what was loaded)`);
if (errors) out.push(`  ERRORS: ${errors} bundles failed${aborted ? ' (aborted)' : ''}`);
out.push(`  next --start-index ${nextIndex}; written to ${outFile}`);
console.log(out.join('\n'));
process.exit(errors || verified === false ? 1 : 0);

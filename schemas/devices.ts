import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox'

// The device models. Field names are the wire format of the original system and must not change.

export const DEVICE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'

export const DeviceKinds = { pc: 'pc', raspberry: 'raspberry' } as const
export type DeviceKind = typeof DeviceKinds[keyof typeof DeviceKinds]

export const DeviceIdSchema = Type.String({
  pattern: DEVICE_ID_PATTERN,
  description: 'Device id: letters, digits, `_`, `.` or `-`, 1 to 64 characters, starting with a letter or digit',
  examples: ['pc1']
})

const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

// A sensor the host does not have is absent or null, never an invented zero.
function sensor (description: string, minimum: number, maximum: number, example: number) {
  return Type.Optional(Type.Union([Type.Number({ minimum, maximum }), Type.Null()], { description, examples: [example] }))
}

export const ReadingBaseFields = {
  uuid: Type.String({ pattern: UUID_PATTERN, description: 'Reading id (UUID); the same uuid is stored once', examples: ['0f8e5c2a-3b7d-4c1e-9a52-6d4b8e1f2a3c'] }),
  device: DeviceIdSchema,
  loading_datetime: Type.String({
    minLength: 1,
    maxLength: 40,
    description: 'When the reading was taken: ISO 8601 (a time without zone is UTC) or the original `YYYY-MM-DD@HH:MM:SS` (read as UTC). Served as ISO 8601 UTC.',
    examples: ['2022-10-06T18:08:55.000Z']
  }),
  kind: Type.Optional(Type.Union([Type.Literal('pc'), Type.Literal('raspberry')], {
    description: 'Device kind; recognised from the fields when absent'
  }))
}

// Its static type is declared: the inferred one (a union with an array branch) makes the stored Reading type too deep for tsc.
const GpuThrottleReasons = Type.Union([Type.Array(Type.String({ pattern: '^[a-z_]{1,40}$' }), { maxItems: 16 }), Type.Null()], {
  description: 'Active NVIDIA clock-event (throttle) reasons, by nvidia-smi name: sw_thermal_slowdown, hw_thermal_slowdown, hw_slowdown, hw_power_brake_slowdown, sw_power_cap, …',
  examples: [['sw_power_cap']]
}) as unknown as TUnsafe<string[] | null>

export const PcSensorFields = {
  ClockCPUCoreOne: sensor('CPU core clock, MHz', 0, 20_000, 3615.13),
  TemperatureCPUPackage: sensor('CPU package temperature, °C', -50, 150, 54),
  LoadCPUTotal: sensor('Total CPU load, %', 0, 100, 25.39),
  PowerCPUPackage: sensor('CPU package power, W', 0, 2000, 8.11),
  TemperatureGPUCore: sensor('GPU core temperature, °C (hosts with a GPU)', -50, 150, 61),
  LoadGPUCore: sensor('GPU core load, % (hosts with a GPU)', 0, 100, 12),
  ThrottleEventsCPU: sensor('CPU thermal throttle events the kernel counted since the previous reading (Linux thermal_throttle core and package counts), count', 0, 1e9, 0),
  ClockCPUMax: sensor('CPU maximum clock (cpufreq cpuinfo_max_freq), MHz', 0, 20_000, 3600),
  TemperatureCPUCritical: sensor('CPU critical or maximum temperature given by the platform (hwmon temp*_crit / temp*_max), °C', -50, 200, 100),
  PowerGPU: sensor('GPU power draw (nvidia-smi), W', 0, 5000, 180.5),
  ClockGPUCore: sensor('GPU graphics clock (nvidia-smi), MHz', 0, 20_000, 1950),
  ThrottleReasonsGPU: Type.Optional(GpuThrottleReasons)
}

export const THROTTLED_PATTERN = '^0[xX][0-9a-fA-F]{1,8}$'

export const RaspberrySensorFields = {
  GPU_temp_celsius: sensor('GPU temperature, °C', -50, 150, 83.7),
  CPU_temp_celsius: sensor('CPU temperature, °C', -50, 150, 83.75),
  frequency_arm_hz: sensor('ARM clock, Hz', 0, 1e11, 1_500_000_000),
  frequency_core_hz: sensor('Core (VPU) clock, Hz', 0, 1e11, 500_000_000),
  frequency_pwm_hz: sensor('PWM clock, Hz', 0, 1e11, 107_143_064),
  voltage_core_v: sensor('Core voltage, V', 0, 5, 0.9084),
  voltage_sdram_c_v: sensor('SDRAM controller voltage, V', 0, 5, 1.1),
  voltage_sdram_i_v: sensor('SDRAM I/O voltage, V', 0, 5, 1.1),
  voltage_sdram_p_v: sensor('SDRAM physical voltage, V', 0, 5, 1.1),
  memory_arm_bytes: sensor('Memory split to the ARM, bytes', 0, 1e13, 994_050_048),
  memory_gpu_bytes: sensor('Memory split to the GPU, bytes', 0, 1e13, 79_691_776),
  throttled: Type.Optional(Type.Union([Type.String({ pattern: THROTTLED_PATTERN }), Type.Null()], {
    description: 'Bit mask printed by `vcgencmd get_throttled`: bits 0-3 under-voltage, ARM frequency capped, throttled, soft temperature limit now; bits 16-19 the same since boot',
    examples: ['0x50005']
  }))
}

export const PcReadingSchema = Type.Object({ ...ReadingBaseFields, ...PcSensorFields }, {
  $id: 'PcReading',
  title: 'PcReading',
  description: 'A reading of a PC (the original pc1 has the GPU fields, pc2 does not)'
})
export type PcReading = Static<typeof PcReadingSchema>

export const RaspberryReadingSchema = Type.Object({ ...ReadingBaseFields, ...RaspberrySensorFields }, {
  $id: 'RaspberryReading',
  title: 'RaspberryReading',
  description: 'A reading of a Raspberry Pi (vcgencmd and sysfs values)'
})
export type RaspberryReading = Static<typeof RaspberryReadingSchema>

export const PC_FIELDS = Object.keys(PcSensorFields) as Array<keyof typeof PcSensorFields>
export const RASPBERRY_FIELDS = Object.keys(RaspberrySensorFields) as Array<keyof typeof RaspberrySensorFields>

export const ReadingSchemaByKind: Record<DeviceKind, TSchema> = {
  pc: PcReadingSchema,
  raspberry: RaspberryReadingSchema
}

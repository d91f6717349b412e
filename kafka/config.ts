import type { Config } from '../config.js'

export type KafkaSettings = Pick<Config, 'brokers' | 'KAFKA_SECURITY_PROTOCOL' | 'KAFKA_SASL_MECHANISM' | 'KAFKA_SASL_USERNAME' | 'KAFKA_SASL_PASSWORD'>

/** librdkafka settings shared by the consumer and the collector's producer (MSK, Confluent Cloud, local). */
export function rdkafkaCommon (settings: KafkaSettings, clientId: string): Record<string, string | number | boolean> {
  const conf: Record<string, string | number | boolean> = {
    'bootstrap.servers': settings.brokers.join(','),
    'client.id': clientId,
    // Quick reconnects: a broker restart should cost seconds, not minutes.
    'reconnect.backoff.ms': 200,
    'reconnect.backoff.max.ms': 5000,
    'socket.keepalive.enable': true,
    'log.connection.close': false
  }
  if (settings.KAFKA_SECURITY_PROTOCOL !== undefined) conf['security.protocol'] = settings.KAFKA_SECURITY_PROTOCOL.toLowerCase()
  if (settings.KAFKA_SASL_MECHANISM !== undefined) {
    conf['sasl.mechanisms'] = settings.KAFKA_SASL_MECHANISM
    if (settings.KAFKA_SASL_USERNAME !== undefined) conf['sasl.username'] = settings.KAFKA_SASL_USERNAME
    if (settings.KAFKA_SASL_PASSWORD !== undefined) conf['sasl.password'] = settings.KAFKA_SASL_PASSWORD
  }
  return conf
}

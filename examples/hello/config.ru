# frozen_string_literal: true

# The smallest Lunar demo: a page that shows what the server saw.
run lambda { |env|
  seen = env.select { |k, _| k.match?(/\A[A-Z_]+\z/) }.sort.map { |k, v| "#{k} = #{v}" }
  body = "Hello from #{env['SERVER_SOFTWARE']}!\n\n#{seen.join("\n")}\n"
  [200, { "content-type" => "text/plain; charset=utf-8", "content-length" => body.bytesize.to_s }, [body]]
}
